//! Guessing is throttled: fixed-window attempt counters per client address and per facility
//! number. Counters live in memory, so with several instances each enforces its own limit
//! (the effective limit is the per-instance limit times the instance count).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

impl Throttle {
    pub fn new() -> Self {
        Self {
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt for `key`. `Err(wait)` when the key has used up `limit` attempts in
    /// the current `window`; the attempt is then not counted.
    pub fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<(), Duration> {
        self.hit_at(key, limit, window, Instant::now())
    }

    fn hit_at(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut map = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        // Expired windows are dropped now and then so the map cannot grow without bound.
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = map.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            return Err(window
                .saturating_sub(now.duration_since(entry.0))
                .max(Duration::from_secs(1)));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_limit_then_refuses_until_the_window_ends() {
        let t = Throttle::new();
        let w = Duration::from_secs(60);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(t.hit_at("k", 3, w, start).is_ok());
        }
        let wait = t
            .hit_at("k", 3, w, start + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(t.hit_at("other", 3, w, start).is_ok());
        assert!(t.hit_at("k", 3, w, start + Duration::from_secs(60)).is_ok());
    }
}
