-- Handlers' PEP 723 dependencies (issue 17). A lock is content-addressed like a blob: its sha256 names
-- the dependency layer a worker unpacks from it. A validation that resolved dependencies names its lock;
-- a validated version is the file's bytes and that lock, and a task pins both.
CREATE TABLE dependency_locks (
  sha256         text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  lock           text NOT NULL,
  packages       integer NOT NULL CHECK (packages >= 0),
  -- Of the unpacked layer: what QUOTA_LAYER_MIB counts.
  unpacked_bytes bigint NOT NULL CHECK (unpacked_bytes >= 0),
  created_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT dependency_locks_sha256_matches CHECK (sha256 = encode(sha256(convert_to(lock, 'UTF8')), 'hex'))
);

ALTER TABLE validations ADD COLUMN lock_sha256 text REFERENCES dependency_locks (sha256);
ALTER TABLE tasks ADD COLUMN lock_sha256 text REFERENCES dependency_locks (sha256);
CREATE INDEX validations_by_lock ON validations (owner, lock_sha256) WHERE lock_sha256 IS NOT NULL;
