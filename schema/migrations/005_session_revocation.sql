-- Sessions (JWTs) issued before this moment are refused: signing out and
-- changing the password end every session of the user.
ALTER TABLE users ADD COLUMN sessions_valid_after timestamptz NOT NULL DEFAULT 'epoch';
