/**
 * What a lock is resolved for and a layer unpacked for: the sandbox's own interpreter (the image is
 * built from the host's Debian python3.11, glibc 2.36 with it), so a wheel that installs here imports there.
 */
import { PYTHON_BIN } from '../../sandbox/image';

export const TARGET = {
  /** uv reads the version and ABI tags from this interpreter (it never runs package code with it). */
  python: PYTHON_BIN,
  /** PEP 600 tag of the image's glibc; uv widens it to every older manylinux and musllinux-free tag. */
  platform: 'x86_64-manylinux_2_36',
} as const;

/** The first line of every lock: the target is part of the lock's text, so part of its sha256 (the layer id). */
export const LOCK_HEADER = `# taskflow lock v1: ${TARGET.python} ${TARGET.platform}, wheels only`;
