/**
 * Infrastructure failures of the sandbox runtime. These are never the user's fault and are worth
 * retrying; what user code does (raise, time out, blow the memory limit) is an outcome, not an error.
 */
export class SandboxInfraError extends Error {
  constructor(
    message: string,
    readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'SandboxInfraError';
  }
}

/** The Docker engine cannot be reached or lacks what the sandbox needs (e.g. the runsc runtime). */
export class EngineUnavailableError extends SandboxInfraError {
  constructor(message: string, cause?: unknown) {
    super(message, cause);
    this.name = 'EngineUnavailableError';
  }
}

/** The caller aborted the run (activity cancellation); the container has been killed. */
export class SandboxCancelledError extends Error {
  constructor() {
    super('sandbox run cancelled');
    this.name = 'SandboxCancelledError';
  }
}
