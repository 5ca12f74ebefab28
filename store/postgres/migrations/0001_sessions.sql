-- The sessions table. {{table}} and {{index:NAME}} are replaced by the
-- quoted, schema-qualified names the store was configured with.
--
-- id and user_id use the "C" collation: they are opaque keys, compared byte
-- for byte, and C comparisons are the cheapest a btree can do.
--
-- user_data is bytea, not jsonb or json: the contract returns the user
-- profile byte for byte as it was stored, jsonb re-encodes it (reorders keys,
-- drops duplicates and whitespace, normalises numbers) and json must be valid
-- in the server encoding, a stricter test than the JSON validation every
-- backend shares. Go validates it before it gets here. To query it in SQL:
--   convert_from(user_data, 'UTF8')::jsonb ->> 'email'
-- device_ip is text, not inet, for the same reason: it comes back as given.
CREATE TABLE {{table}} (
    id                text COLLATE "C" PRIMARY KEY,
    user_id           text COLLATE "C" NOT NULL,
    user_data         bytea,
    device_user_agent text        NOT NULL DEFAULT '',
    device_ip         text        NOT NULL DEFAULT '',
    device_label      text        NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    last_seen_at      timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    -- Insertion order: sessions created in the same millisecond still list
    -- in the order they were created.
    seq               bigint GENERATED ALWAYS AS IDENTITY
);

-- A user's live sessions: List, Count, DeleteUser, UpdateUser and the
-- per-user cap of Create.
CREATE INDEX {{index:user_expires}} ON {{table}} (user_id, expires_at);

-- Cleanup finds expired rows without scanning the table.
CREATE INDEX {{index:expires}} ON {{table}} (expires_at);
