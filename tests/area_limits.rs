//! An outage request's GeoJSON area is refused on its limits before it is built: its size in
//! bytes before parsing, its positions while parsing. What the request costs is measured
//! by counting every byte allocated, as the refusal looks the same from outside whether the
//! area was built first or not. This binary holds one test, so nothing else allocates
//! beside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use varsel::domain::geo::{MAX_INPUT_BYTES, MAX_POSITIONS};
use varsel::outages::Declare;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grow(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::SeqCst) + size;
    PEAK.fetch_max(live, Ordering::SeqCst);
}

// SAFETY: every call goes to the system allocator unchanged; only the sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Old and new block both exist while the contents move.
        grow(new_size);
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What `work` returns, and the most memory it held at once beyond what was live before.
fn peak_of<T>(work: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let result = work();
    (result, PEAK.load(Ordering::SeqCst) - before)
}

/// A declaration body whose area is one ring of `positions` positions, padded with spaces
/// inside the area's object to `area_bytes`.
fn declaration(positions: usize, area_bytes: usize) -> Vec<u8> {
    let mut area = String::from(r#"{"type": "Polygon", "coordinates": [["#);
    area.push_str(&"[17.5,63.1],".repeat(positions - 1));
    area.push_str("[17.5,63.1]]]");
    assert!(
        area.len() < area_bytes,
        "{} positions do not fit",
        positions
    );
    area.push_str(&" ".repeat(area_bytes - area.len() - 1));
    area.push('}');
    assert_eq!(area.len(), area_bytes);
    format!(r#"{{"service": "electricity", "affected": {{"area": {area}}}}}"#).into_bytes()
}

/// How an outage route reads its body: axum's `Json` extractor is `serde_json::from_slice`.
fn refusal(body: &[u8]) -> String {
    let declare: Declare = serde_json::from_slice(body).expect("the body is a declaration");
    declare
        .affected
        .validate()
        .expect_err("the area is over a limit")
        .to_string()
}

#[test]
fn an_area_over_a_limit_is_refused_without_being_built() {
    // Just over the byte limit, almost all of it positions.
    let body = declaration((MAX_INPUT_BYTES - 100) / 12, MAX_INPUT_BYTES + 1);
    let (message, peak) = peak_of(|| refusal(&body));
    assert_eq!(
        message,
        format!(
            "area: the input is {} bytes; the limit is {MAX_INPUT_BYTES} bytes",
            MAX_INPUT_BYTES + 1
        )
    );
    // The area's text is copied once, and nothing is built from it (10,485,916 bytes
    // measured).
    assert!(
        peak < MAX_INPUT_BYTES + 1024 * 1024,
        "{peak} bytes for a body of {}",
        body.len()
    );
    // The same body as a serde_json::Value, as requests were read before, for scale
    // (145 MB measured).
    let (value, value_peak) = peak_of(|| serde_json::from_slice::<serde_json::Value>(&body));
    assert!(value.is_ok());
    drop(value);
    assert!(
        value_peak > 10 * body.len(),
        "a Value of {} bytes took {value_peak}",
        body.len()
    );

    // Under the byte limit with eight times the positions allowed: refused when the count
    // passes the limit, holding what was read up to there and nothing after.
    let body = declaration(MAX_POSITIONS * 8, MAX_INPUT_BYTES - 1024);
    let (message, peak) = peak_of(|| refusal(&body));
    assert_eq!(
        message,
        format!("area: the area has more than {MAX_POSITIONS} positions")
    );
    // The copied text, and under 256 bytes for each position read before the refusal
    // (about 170 are measured); a Value of this body takes over 100 MB.
    assert!(
        peak < MAX_INPUT_BYTES + 256 * MAX_POSITIONS,
        "{peak} bytes for a body of {}",
        body.len()
    );
}
