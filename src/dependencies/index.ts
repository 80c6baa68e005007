/** Handlers' PEP 723 dependencies: resolving to a lock, unpacking a lock into a layer, and what a layer provides. */
export { DependencyRejected, PackageIndexUnavailable, DependencyToolError, type DependencyFindingCode } from './errors';
export { resolveLock, parseLock, lockSha256, checkRequirements, type Lock, type Pin } from './lock';
export { LayerCache, makeReadOnly, removeTree, type Layer } from './layer';
export { topLevelNames } from './top-level';
export { undeclaredImports } from './imports';
export { TARGET, LOCK_HEADER } from './target';
