-- Where a confirmed plan was shown: a run cut short by a crash is reported there.
ALTER TABLE reap_plans ADD COLUMN channel TEXT;
