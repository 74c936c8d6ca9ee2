-- Retention (serve --keep-builds): a build whose artifact and extracted
-- files were removed to save space. Its row and its log stay; its URL
-- answers 410 Gone and it can no longer be activated. collected_keep is
-- how many builds were kept for its project then, for the page that says so.
ALTER TABLE builds ADD COLUMN collected_at timestamptz;
ALTER TABLE builds ADD COLUMN collected_keep integer NOT NULL DEFAULT 0;
