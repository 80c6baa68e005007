-- TaskFlow's own state (Temporal keeps its own database). Invariants live here, in the schema:
-- every row belongs to a known owner, bytes match their sha256, one current upload per (owner, name),
-- a validation's final status is written once.

CREATE TABLE owners (
  owner      text PRIMARY KEY CHECK (owner ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- File bytes, content-addressed: one row per distinct content, shared by the uploads and versions that
-- refer to it. A row nobody refers to any more is removed by the retention sweep.
CREATE TABLE blobs (
  sha256     text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  bytes      bytea NOT NULL,
  touched_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT blobs_sha256_matches CHECK (sha256 = encode(sha256(bytes), 'hex'))
);

-- One row per upload. `blob_sha256` holds the bytes while they are needed: during the validation, and
-- while a rejected upload is in quarantine (a validated one's bytes are held by its version).
CREATE TABLE validations (
  validation_id    text PRIMARY KEY CHECK (validation_id ~ '^[0-9a-f]{32}$'),
  owner            text NOT NULL REFERENCES owners,
  file_name        text NOT NULL CHECK (file_name ~ '^[A-Za-z_][A-Za-z0-9_]{0,63}$'),
  sha256           text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  size             integer NOT NULL CHECK (size >= 0),
  blob_sha256      text REFERENCES blobs (sha256),
  created_at       timestamptz NOT NULL,
  test_payloads    jsonb,
  workflow_id      text NOT NULL UNIQUE,
  workflow_started boolean NOT NULL DEFAULT false,
  start_error      text,
  final            jsonb,
  report           jsonb,
  finished_at      timestamptz,
  CHECK ((final IS NULL) = (finished_at IS NULL))
);
CREATE INDEX validations_unfinished ON validations (owner) WHERE final IS NULL;
CREATE INDEX validations_pending_start ON validations (created_at) WHERE NOT workflow_started AND final IS NULL;
CREATE INDEX validations_by_owner ON validations (owner, file_name);

CREATE FUNCTION validations_final_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.final IS NOT NULL AND NEW.final IS DISTINCT FROM OLD.final THEN
    RAISE EXCEPTION 'validation %: the final status is written once', OLD.validation_id USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER validations_final_once BEFORE UPDATE ON validations FOR EACH ROW EXECUTE FUNCTION validations_final_once();

-- Every validated version an owner has (tasks are pinned to these by sha256).
CREATE TABLE versions (
  owner         text NOT NULL REFERENCES owners,
  sha256        text NOT NULL REFERENCES blobs (sha256),
  validation_id text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  -- A task created a moment ago may not be visible as pinned yet: the sweep spares recently used versions.
  last_used_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (owner, sha256)
);

-- One row per (owner, name): its last upload (or its deletion) and the version promoted for it.
CREATE TABLE task_files (
  owner                  text NOT NULL REFERENCES owners,
  file_name              text NOT NULL CHECK (file_name ~ '^[A-Za-z_][A-Za-z0-9_]{0,63}$'),
  current_validation_id  text REFERENCES validations (validation_id),
  uploaded_at            timestamptz,
  deleted_at             timestamptz,
  deleted_validation_id  text,
  promoted_sha256        text,
  promoted_validation_id text,
  promoted_at            timestamptz,
  PRIMARY KEY (owner, file_name),
  FOREIGN KEY (owner, promoted_sha256) REFERENCES versions (owner, sha256),
  CHECK (current_validation_id IS NULL OR deleted_at IS NULL),
  CHECK ((promoted_sha256 IS NULL) = (promoted_validation_id IS NULL))
);

-- Sliding-window rate limits (uploads and tasks per minute), shared by every API replica.
CREATE TABLE rate_events (
  owner text NOT NULL REFERENCES owners,
  kind  text NOT NULL,
  at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rate_events_window ON rate_events (owner, kind, at);

-- One row per task: what the task quotas count (unfinished tasks, the bytes of payloads and results kept
-- in Temporal on the owner's behalf). Written with the workflow's start; finished by the workflow's end.
CREATE TABLE tasks (
  task_id       uuid PRIMARY KEY,
  owner         text NOT NULL REFERENCES owners,
  file_name     text NOT NULL,
  sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  created_at    timestamptz NOT NULL DEFAULT now(),
  payload_bytes integer NOT NULL CHECK (payload_bytes >= 0),
  result_bytes  integer CHECK (result_bytes >= 0),
  status        text,
  finished_at   timestamptz,
  CHECK ((status IS NULL) = (finished_at IS NULL))
);
CREATE INDEX tasks_unfinished ON tasks (owner, created_at) WHERE finished_at IS NULL;
CREATE INDEX tasks_by_owner ON tasks (owner, finished_at);
