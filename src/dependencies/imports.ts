/**
 * `undeclared_import`: a module the file imports that neither the sandbox's standard library (the
 * checker's `externalImports` are what it lacks) nor the file's dependency layer provides. An error when
 * the import certainly runs at load (the file cannot load); a warning when it may not (a branch, a loop,
 * a function's body) or is inside `try: ... except ImportError`.
 */
import type { ExternalImport } from '../../sandbox/types';
import type { ValidationFinding } from '../../domain/validation';

export function undeclaredImports(imports: ExternalImport[], provided: readonly string[]): ValidationFinding[] {
  const have = new Set(provided);
  return imports
    .filter((i) => !have.has(i.module))
    .map((i) => ({
      code: 'undeclared_import' as const,
      severity: i.guarded ? ('warning' as const) : ('error' as const),
      message: i.guarded
        ? `'${i.module}' is not in the standard library nor a declared dependency: where this import runs it fails (declare its package in a PEP 723 block if the file needs it)`
        : `'${i.module}' is not in the standard library nor a declared dependency: declare its package in a PEP 723 block (# /// script, dependencies = [...], # ///)`,
      line: i.line,
      col: i.col,
    }));
}
