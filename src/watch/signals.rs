//! SIGINT and SIGTERM ask the daemon to stop taking files; a second one cancels the deliveries
//! in flight instead of waiting for them.

use std::sync::atomic::{AtomicU32, Ordering};

static REQUESTS: AtomicU32 = AtomicU32::new(0);

extern "C" fn request_stop(_signal: libc::c_int) {
    // Only an atomic add: the one thing a signal handler may safely do here.
    REQUESTS.fetch_add(1, Ordering::SeqCst);
}

pub fn install() {
    // SAFETY: the handler only adds to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            request_stop as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            request_stop as *const () as libc::sighandler_t,
        );
    }
}

/// Stop as if a signal had come (a part of the daemon failed).
pub fn request() {
    REQUESTS.fetch_add(1, Ordering::SeqCst);
}

pub fn stop_requested() -> bool {
    REQUESTS.load(Ordering::SeqCst) > 0
}

/// Asked to stop twice: do not wait for the deliveries in flight.
pub fn cancel_requested() -> bool {
    REQUESTS.load(Ordering::SeqCst) > 1
}
