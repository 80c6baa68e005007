/**
 * Human renderings of API answers for the CLI: findings the way a compiler prints diagnostics
 * (`greet.py:12:5: error undefined_name: 'pyload' is not defined`, then the source line and a
 * caret), validation verdicts, task results with their tracebacks, and task tables.
 */
import type { TaskState } from '../../domain/task';
import type { ValidationFinding, ValidationStatus } from '../../domain/validation';

export interface Style {
  error(s: string): string;
  warning(s: string): string;
  ok(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

const ansi = (code: string) => (s: string) => `\u001b[${code}m${s}\u001b[0m`;
export const COLOR: Style = { error: ansi('1;31'), warning: ansi('1;33'), ok: ansi('1;32'), dim: ansi('2'), bold: ansi('1') };
export const PLAIN: Style = { error: (s) => s, warning: (s) => s, ok: (s) => s, dim: (s) => s, bold: (s) => s };

/** Control characters from a server (or from the file, via a snippet) never reach the terminal raw. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const printable = (s: string): string => s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '?');

export function formatFinding(file: string, f: ValidationFinding, style: Style = PLAIN): string {
  const where = [file, f.line, f.line !== undefined ? f.col : undefined].filter((x) => x !== undefined).join(':');
  const severity = f.severity === 'error' ? style.error('error') : style.warning('warning');
  const head = `${style.bold(`${printable(where)}:`)} ${severity} ${style.dim(f.code)}: ${printable(f.message)}`;
  if (!f.snippet) return head;
  const [source, caret] = f.snippet.split('\n');
  return [head, `    ${printable(source)}`, ...(caret !== undefined ? [`    ${style.ok(printable(caret))}`] : [])].join('\n');
}

export function countLine(findings: ValidationFinding[]): string {
  const errors = findings.filter((f) => f.severity === 'error').length;
  const warnings = findings.length - errors;
  return `${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`;
}

/** The verdict line, then every finding (errors first is not needed: they come in file order). */
export function formatValidation(s: ValidationStatus, file: string, style: Style = PLAIN): string {
  const verdict =
    s.status === 'VALIDATED' ? style.ok('VALIDATED') : s.status === 'REJECTED' ? style.error('REJECTED') : style.bold(s.status);
  const lines = [`${printable(file)}: ${verdict} (${countLine(s.findings)}; validation ${s.validation_id})`];
  for (const f of s.findings) lines.push(formatFinding(file, f, style));
  if (s.dependencies) {
    const d = s.dependencies;
    lines.push(`dependencies: ${d.requirements.map(printable).join(', ')} (lock ${d.lock_sha256.slice(0, 12)})`);
    for (const p of d.pins) lines.push(`  ${printable(p.name)}==${printable(p.version)}`);
  }
  if (s.status === 'VALIDATED') {
    lines.push(`run it: taskflow run ${s.file_name} --payload '{...}' --wait`);
    if (s.promoted === false) lines.push(style.warning('note: a newer upload of this name was promoted first'));
  }
  return lines.join('\n');
}

export function formatTask(t: TaskState, style: Style = PLAIN): string {
  const status =
    t.status === 'COMPLETED'
      ? style.ok(t.status)
      : t.status === 'FAILED' || t.status === 'CANCELLED'
        ? style.error(t.status)
        : style.bold(t.status);
  const took = t.started_at && t.finished_at ? ` in ${Date.parse(t.finished_at) - Date.parse(t.started_at)} ms` : '';
  const lines = [`task ${t.task_id} (${printable(t.title)}, ${t.priority} priority): ${status}${took}`];
  if (t.status === 'COMPLETED') lines.push(JSON.stringify(t.result, null, 2) ?? 'null');
  if (t.error) {
    lines.push(`${style.error(printable(t.error.type))}: ${printable(t.error.message)}`);
    if (t.error.traceback) lines.push(printable(t.error.traceback.replace(/\n$/, '')));
  }
  return lines.join('\n');
}

export function formatTaskTable(tasks: TaskState[]): string {
  const rows = [
    ['TASK ID', 'NAME', 'STATUS', 'PRIORITY', 'CREATED'],
    ...tasks.map((t) => [t.task_id, t.title, t.status, t.priority, t.created_at]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows
    .map((r) =>
      printable(
        r
          .map((c, i) => c.padEnd(widths[i]))
          .join('  ')
          .trimEnd(),
      ),
    )
    .join('\n');
}
