-- A step whose notices can wait (planned work ahead, a small move of the estimate) taken
-- during quiet hours holds them until the hours end: its notices are first due then.
ALTER TABLE outage_steps ADD COLUMN held_until INTEGER;
