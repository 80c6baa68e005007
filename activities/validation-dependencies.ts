/**
 * The validation's dependency step: the file's PEP 723 requirements resolved to a lock, the owner's layer
 * quota decided, the lock kept and named on the validation, its layer made on this host, and the file's
 * imports checked against what the layer provides. What the requirements cause is a DependencyRejected
 * (a finding); the index being unreachable is thrown as is (Temporal retries it).
 */
import type { DependencyConfig } from '../src/config';
import type { Logger } from '../src/logger';
import type { Storage } from '../src/storage';
import { DependencyRejected, LayerCache, resolveLock, undeclaredImports, type Layer } from '../src/dependencies';
import type { ExternalImport } from '../sandbox';
import type { ValidationDependencies, ValidationFinding } from '../domain/validation';

export interface DependencyStepInput {
  validationId: string;
  owner: string;
  requirements: string[];
  externalImports: ExternalImport[];
}

export interface DependencyStepResult {
  dependencies: ValidationDependencies;
  /** undeclared_import findings (warnings only: an error rejects). */
  findings: ValidationFinding[];
  layerBytes: number;
  wallMs: number;
}

const MIB = 1024 * 1024;

export async function resolveDependencyStep(
  deps: { config: DependencyConfig; quotaBytes: number; storage: Storage; layers: LayerCache; log: Logger },
  input: DependencyStepInput,
  signal?: AbortSignal,
): Promise<{ result: DependencyStepResult; layer: Layer }> {
  const t0 = Date.now();
  const lock = await resolveLock(deps.config, input.requirements, signal);
  const layer = await deps.layers.ensure(lock.text, signal);
  const outcome = await deps.storage.locks.attach(
    input.validationId,
    input.owner,
    { sha256: lock.sha256, text: lock.text, packages: lock.pins.length, unpackedBytes: layer.unpackedBytes },
    deps.quotaBytes,
  );
  if (!outcome.attached)
    throw new DependencyRejected(
      'dependency_quota_exceeded',
      `these dependencies unpack to ${(layer.unpackedBytes / MIB).toFixed(1)} MiB and ${input.owner}'s other layers to ${(outcome.inUseBytes / MIB).toFixed(1)} MiB: at most ${deps.quotaBytes / MIB} MiB (QUOTA_LAYER_MIB); delete files or wait for the retention sweep`,
    );
  const findings = undeclaredImports(input.externalImports, layer.topLevel);
  deps.log.info('dependencies resolved', { validationId: input.validationId, lock: lock.sha256, packages: lock.pins.length });
  return {
    layer,
    result: {
      dependencies: {
        requirements: input.requirements,
        lock_sha256: lock.sha256,
        pins: lock.pins.map((p) => ({ name: p.name, version: p.version })),
      },
      findings,
      layerBytes: layer.unpackedBytes,
      wallMs: Date.now() - t0,
    },
  };
}
