//! W3C trace context (`traceparent`) through the service: a request's trace
//! is continued by its store calls and by the outbox, so the webhook or NATS
//! delivery of a favorite belongs to the trace of the request that wrote it.
//!
//! The spans are `tracing` spans; exporting them is the embedder's choice
//! (`user-server` installs `tracing-opentelemetry` with an OTLP exporter when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set). Without that layer, or without the
//! `opentelemetry` feature, [`traceparent`] is `None` and nothing is stored
//! or sent. Only `traceparent` travels; `tracestate` is not kept.
//!
//! ```
//! use user_core::trace::TraceParent;
//!
//! let header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
//! let parent: TraceParent = header.parse().unwrap();
//! assert_eq!(parent.trace_id_hex(), "0af7651916cd43dd8448eb211c80319c");
//! assert_eq!(parent.to_string(), header);
//! assert!("00-00000000000000000000000000000000-b7ad6b7169203331-01".parse::<TraceParent>().is_err());
//! ```

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

/// A W3C `traceparent` (version 00): the trace, the calling span and the
/// sampled flag. Parsing refuses what the recommendation says a receiver
/// must ignore (all-zero ids, version `ff`, bad length or case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace, 16 bytes, never all zero.
    pub trace_id: [u8; 16],
    /// The parent span, 8 bytes, never all zero.
    pub span_id: [u8; 8],
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

impl TraceParent {
    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex_lower(&self.trace_id)
    }

    /// Whether the caller recorded its span (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// Why a `traceparent` value was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a W3C traceparent")]
pub struct InvalidTraceParent;

impl FromStr for TraceParent {
    type Err = InvalidTraceParent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split('-');
        let (Some(version), Some(trace), Some(span), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidTraceParent);
        };
        // A later version may append fields; version 00 has exactly four.
        let rest_allowed = version != "00";
        if (parts.next().is_some() && !rest_allowed) || version.len() != 2 || version == "ff" {
            return Err(InvalidTraceParent);
        }
        let _ = hex_bytes::<1>(version)?;
        let trace_id = hex_bytes::<16>(trace)?;
        let span_id = hex_bytes::<8>(span)?;
        let [flags] = hex_bytes::<1>(flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return Err(InvalidTraceParent);
        }
        Ok(Self { trace_id, span_id, flags })
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{:02x}", hex_lower(&self.trace_id), hex_lower(&self.span_id), self.flags)
    }
}

/// `N` bytes from exactly `2N` lowercase hex digits (W3C: uppercase is invalid).
fn hex_bytes<const N: usize>(s: &str) -> Result<[u8; N], InvalidTraceParent> {
    let digits = s.as_bytes();
    if digits.len() != 2 * N {
        return Err(InvalidTraceParent);
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(InvalidTraceParent),
    };
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Ok(out)
}

fn hex_lower(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

thread_local! {
    /// The trace a write runs for, on a thread that runs other callers' work
    /// (the SQLite writer): the caller's span is not current there.
    static CARRIED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The `traceparent` of the current span, to store with a task or send on
/// an outgoing request; `None` when no OpenTelemetry layer records spans.
pub fn traceparent() -> Option<String> {
    if let Some(carried) = CARRIED.with_borrow(Clone::clone) {
        return Some(carried);
    }
    current()
}

#[cfg(feature = "opentelemetry")]
fn current() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let context = tracing::Span::current().context();
    let span = context.span();
    let span = span.span_context();
    span.is_valid().then(|| {
        TraceParent {
            trace_id: span.trace_id().to_bytes(),
            span_id: span.span_id().to_bytes(),
            flags: span.trace_flags().to_u8(),
        }
        .to_string()
    })
}

#[cfg(not(feature = "opentelemetry"))]
fn current() -> Option<String> {
    None
}

/// Runs `f` with `traceparent` standing for the current span's on this
/// thread: work done on behalf of a caller whose span lives elsewhere.
pub(crate) fn carrying<T>(traceparent: Option<String>, f: impl FnOnce() -> T) -> T {
    if traceparent.is_none() {
        return f();
    }
    let before = CARRIED.replace(traceparent);
    // Restored even if `f` panics (the SQLite writer catches panics).
    struct Restore(Option<String>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CARRIED.set(self.0.take());
        }
    }
    let _restore = Restore(before);
    f()
}

/// Makes `span` continue the trace `traceparent` names (a request's header,
/// a task's stored context). Call before the span is first entered; does
/// nothing without an OpenTelemetry layer or for a value that does not parse.
/// Returns whether the span now has that parent.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) -> bool {
    let Ok(parent) = traceparent.parse::<TraceParent>() else { return false };
    set_parent(span, parent)
}

#[cfg(feature = "opentelemetry")]
fn set_parent(span: &tracing::Span, parent: TraceParent) -> bool {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let remote = SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.span_id),
        TraceFlags::new(parent.flags),
        true,
        TraceState::default(),
    );
    span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote)).is_ok()
}

#[cfg(not(feature = "opentelemetry"))]
fn set_parent(_: &tracing::Span, _: TraceParent) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_w3c_allows_and_nothing_else() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed: TraceParent = ok.parse().unwrap();
        assert!(parsed.sampled());
        assert_eq!(parsed.to_string(), ok);
        // A future version may carry more fields; we read the four we know.
        assert!("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what".parse::<TraceParent>().is_ok());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é6-00f067aa0ba902b7-01",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_carried_trace_stands_for_the_span_and_is_restored_after() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned();
        assert_eq!(traceparent(), None);
        let seen = carrying(Some(tp.clone()), traceparent);
        assert_eq!(seen, Some(tp.clone()));
        assert_eq!(traceparent(), None);
        let _ = std::panic::catch_unwind(|| carrying(Some(tp), || panic!("boom")));
        assert_eq!(traceparent(), None);
    }
}
