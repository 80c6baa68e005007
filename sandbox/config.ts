/** What the sandbox runtime needs to know, handed in by the application (which reads its environment). */
import type { SandboxLimits } from './limits';

export interface SandboxConfig {
  dockerSocket: string;
  /** Image tag override; by default the tag is derived from the image's inputs. */
  image?: string;
  /** The unsafe path, named as such: run user code under runc instead of gVisor. */
  allowInsecureRunc: boolean;
  /** The oldest runsc release accepted, YYYYMMDD (an older one lacks gVisor's security fixes). */
  runscMinRelease: number;
  limits: SandboxLimits;
  poolSize: number;
  /** Long-lived static-checker containers (0: a fresh container per check). */
  checkerContainers: number;
  keyedPoolMax: number;
  keyedMaxUses: number;
  keyedIdleTtlMs: number;
}
