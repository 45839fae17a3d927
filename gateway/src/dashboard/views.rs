//! The dashboard's HTML: maud templates (every interpolated value is escaped by maud), one
//! small stylesheet, no JavaScript. Element ids and classes are stable: the browser test
//! finds its way by them.

use super::data::{Evidence, OrderHistory, ProviderCounts, ProviderHealth};
use super::session::Session;
use super::BASE;
use crate::callbacks::CallbackStats;
use maud::{html, Markup, DOCTYPE};
use paystate_audit::timeline::{Cause, Entry};
use paystate_events::{Event, Provider, Status};
use paystate_journal::dead_letters::DeadLetterPage;
use paystate_projection::{OrderList, OrderView, ProjectionStatus};
use std::sync::atomic::Ordering::Relaxed;

/// The stylesheet, served at `/dashboard/style.css`.
pub const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}\
header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center}\
header a{color:#cfe0ff;text-decoration:none}header .who{margin-left:auto;font-size:.9em}\
main{padding:1em 1.2em}table{border-collapse:collapse;width:100%;background:#fff}\
th,td{border-bottom:1px solid #e3e6ea;padding:.35em .5em;text-align:left;font-size:.92em;vertical-align:top}\
th{background:#eef1f5}.flag{color:#b3261e;font-weight:600}.notice{background:#e7f4e8;padding:.5em;border:1px solid #9ccc9f}\
.error{background:#fdecea;padding:.5em;border:1px solid #f5a9a3}ol#timeline{padding-left:1.2em}\
li.entry{background:#fff;margin:.4em 0;padding:.5em;border:1px solid #e3e6ea}\
.event{display:inline-block;background:#eef1f5;border-radius:3px;padding:0 .4em;margin:.1em}\
.discrepancy{color:#b3261e}pre{white-space:pre-wrap;background:#f0f0f0;padding:.4em;max-height:20em;overflow:auto}\
form.inline{display:inline}input,select,button{font-size:.95em}";

/// The page frame: navigation, who is logged in, a logout form.
fn layout(title: &str, session: Option<&Session>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · paystate" }
                link rel="stylesheet" href={ (BASE) "/style.css" };
            }
            body {
                header {
                    strong { "paystate" }
                    @if let Some(s) = session {
                        a href={ (BASE) "/orders" } { "Orders" }
                        a href={ (BASE) "/review" } { "Review queue" }
                        a href={ (BASE) "/dead-letters" } { "Dead letters" }
                        a href={ (BASE) "/health" } { "Health" }
                        span.who {
                            "key " (s.key_name) " (" (s.scope) ") "
                            form.inline method="post" action={ (BASE) "/logout" } {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
    .into_string()
}

pub fn message_page(title: &str, message: &str) -> String {
    layout(
        title,
        None,
        html! { p.error { (message) } p { a href={ (BASE) "/orders" } { "Back" } } },
    )
}

pub fn login_page(error: Option<&str>) -> String {
    layout(
        "Log in",
        None,
        html! {
            @if let Some(e) = error { p.error #login-error { (e) } }
            p { "Paste an API key of the private listener (" code { "paystate apikey new" } "; "
                code { "paystate dev" } " prints one per run). It is checked against the configured hashes and not kept: the browser gets a session cookie." }
            form #login-form method="post" action={ (BASE) "/login" } {
                label for="key" { "API key " }
                input #key type="password" name="key" autocomplete="off" size="50" required;
                " "
                button #login type="submit" { "Log in" }
            }
        },
    )
}

fn notice(text: Option<&str>) -> Markup {
    html! { @if let Some(t) = text { p.notice #notice { (t) } } }
}

/// The search and filter form values, as given.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct OrdersQuery {
    pub state: Option<String>,
    pub provider: Option<String>,
    pub q: Option<String>,
}

pub fn orders_page(
    session: &Session,
    query: &OrdersQuery,
    list: Result<&OrderList, &str>,
) -> String {
    let selected = |a: &Option<String>, b: &str| a.as_deref() == Some(b);
    let body = html! {
        form #filters method="get" action={ (BASE) "/orders" } {
            "Search " input #q type="search" name="q" value=[query.q.as_deref()]
                placeholder="order id, merchant or provider reference" size="40";
            " State " select name="state" {
                option value="" { "any" }
                @for s in Status::ALL { option value=(s) selected[selected(&query.state, s.as_str())] { (s) } }
            }
            " Provider " select name="provider" {
                option value="" { "any" }
                @for p in Provider::ALL { option value=(p) selected[selected(&query.provider, p.as_str())] { (p) } }
            }
            " " button #search type="submit" { "Show" }
        }
        @match list {
            Err(e) => p.error { (e) },
            Ok(list) => {
                (orders_table(&list.orders))
                p { (list.orders.len()) " shown of " (list.scanned) " scanned"
                    @if list.truncated { " (more match: narrow the filters)" } }
            }
        }
    };
    layout("Orders", Some(session), body)
}

fn orders_table(orders: &[OrderView]) -> Markup {
    html! {
        table #orders {
            tr { th { "order" } th { "state" } th { "provider" } th { "merchant ref" } th { "provider ref" }
                 th { "amount" } th { "captured" } th { "review" } th { "updated" } }
            @for v in orders {
                tr.order {
                    td { a.order-link href={ (BASE) "/orders/" (v.order_id) } { (v.order_id) } }
                    td { (v.status) } td { (v.provider) } td { (v.merchant_reference) }
                    td { (v.provider_ref.as_deref().unwrap_or("")) }
                    td { (v.amount.decimal) " " (v.currency) } td { (v.captured.decimal) }
                    td { @if v.needs_review { span.flag { "needs review" } } }
                    td { (v.updated_at.format("%Y-%m-%d %H:%M:%S")) }
                }
            }
        }
    }
}

pub struct OrderPage<'a> {
    pub session: &'a Session,
    pub view: Option<&'a OrderView>,
    pub history: Result<&'a OrderHistory, &'a str>,
    pub notice: Option<&'a str>,
    pub can_resolve: bool,
}

pub fn order_page(order_id: &str, p: OrderPage<'_>) -> String {
    let body = html! {
        (notice(p.notice))
        @if let Some(v) = p.view {
            table #summary {
                tr { th { "state" } td #state { (v.status) } th { "provider" } td { (v.provider) } }
                tr { th { "amount" } td { (v.amount.decimal) " " (v.currency) } th { "merchant ref" } td { (v.merchant_reference) } }
                tr { th { "authorized" } td { (v.authorized.decimal) } th { "provider refs" } td { (v.provider_refs.join(", ")) } }
                tr { th { "captured" } td #captured { (v.captured.decimal) } th { "refunded" } td { (v.refunded.decimal) } }
                tr { th { "review" } td #review colspan="3" {
                    @if v.needs_review { span.flag { "needs review" } } @else { "no" } } }
            }
            @if v.needs_review {
                (resolve_form(p.session, &v.order_id, p.can_resolve))
            }
            @if !v.discrepancies.is_empty() {
                h2 { "Discrepancies" }
                table #discrepancies {
                    tr { th { "commit" } th { "code" } th { "signal" } th { "detail" } th { "evidence" } }
                    @for d in &v.discrepancies {
                        tr.discrepancy { td { (d.commit) } td { (d.code) } td { (d.signal) } td { (d.detail) } td { (d.evidence_ref) } }
                    }
                }
            }
        } @else {
            p.error { "The projection has no order " (order_id) " (yet); the log below is the source of truth." }
        }
        h2 { "Timeline" }
        @match p.history {
            Err(e) => p.error { (e) },
            Ok(h) if h.entries.is_empty() => p.error #no-commits { "The log has no commits for this order." },
            Ok(h) => {
                @if h.omitted > 0 { p { (h.omitted) " older commits not shown." } }
                ol #timeline {
                    @for e in &h.entries { (entry(e, h.evidence.get(&e.sequence))) }
                }
            }
        }
    };
    layout(&format!("Order {order_id}"), Some(p.session), body)
}

fn resolve_form(session: &Session, order_id: &str, can_resolve: bool) -> Markup {
    html! {
        @if can_resolve {
            form.resolve method="post" action={ (BASE) "/review/" (order_id) "/resolve" } {
                input type="hidden" name="csrf" value=(session.csrf);
                "Resolve review as " strong { (session.key_name) } ": "
                input.reason type="text" name="reason" required size="50" placeholder="why the order may move again";
                " " button.resolve-button type="submit" { "Resolve" }
            }
        } @else {
            p { "Resolving needs a write or admin key (and a command connection)." }
        }
    }
}

fn entry(e: &Entry, evidence: Option<&Vec<Evidence>>) -> Markup {
    let after = e.state_after.as_ref();
    html! {
        li.entry data-seq=(e.sequence) {
            strong { "#" (e.commit) } " seq " (e.sequence) " · decided "
            (e.decided_at.format("%Y-%m-%d %H:%M:%S%.3f")) " · "
            @match &e.cause {
                Cause::Command { name, command_id } => span.cause { "command " code { (name) } " (" (command_id) ")" },
                Cause::Provider { provider, status, provider_ref, evidence_ref, observed_at, .. } => span.cause {
                    (provider) " reported " code { (status) } " (ref " (provider_ref.as_deref().unwrap_or("-"))
                    ", evidence " (evidence_ref) ", observed " (observed_at.format("%H:%M:%S")) ")"
                },
            }
            " → " span.state-after { (after.map_or("?".to_string(), |s| s.status.to_string())) }
            @if after.is_some_and(|s| s.needs_review) { " " span.flag { "needs review" } }
            div.events { @for ev in &e.events { (event(ev)) } }
            @if let Some(err) = &e.error { p.error { "history does not fold: " (err) } }
            @if let Some(list) = evidence { @for ev in list { (evidence_block(ev)) } }
        }
    }
}

fn event(e: &Event) -> Markup {
    let detail = match e {
        Event::DiscrepancyDetected { code, detail, .. } => Some(format!("{code}: {detail}")),
        Event::ReviewResolved { operator, reason } => Some(format!("by {operator}: {reason}")),
        Event::CommandRejected { code, message } => Some(format!("rejected: {code} ({message})")),
        Event::PaymentAuthorized { amount, .. }
        | Event::PaymentCaptured { amount, .. }
        | Event::CaptureRequested { amount, .. }
        | Event::RefundRequested { amount, .. }
        | Event::RefundCompleted { amount, .. } => Some(amount.to_string()),
        Event::PaymentFailed { code, message, .. } => Some(format!("{code}: {message}")),
        _ => None,
    };
    let class = if matches!(e, Event::DiscrepancyDetected { .. }) {
        "event discrepancy"
    } else {
        "event"
    };
    html! { span class=(class) data-event=(e.name()) { (e.name()) @if let Some(d) = detail { " " (d) } } }
}

fn evidence_block(e: &Evidence) -> Markup {
    html! {
        @match e {
            Evidence::Callback(c) => details.evidence {
                summary { "raw callback #" (c.seq) " received " (c.received_at) }
                @if !c.query.is_empty() { p { "query: " code { (c.query) } } }
                pre { @for (k, v) in &c.headers { (k) ": " (v) "\n" } }
                pre.body { (c.body) @if c.truncated { "\n… (cut)" } }
            },
            Evidence::Call { reference } => p.evidence { "evidence: provider API answer " code { (reference) } " (kept as the signal above)" },
            Evidence::Missing { reference, why } => p.evidence.error { "evidence " code { (reference) } ": " (why) },
        }
    }
}

pub fn review_page(
    session: &Session,
    list: Result<&OrderList, &str>,
    can_resolve: bool,
    notice_text: Option<&str>,
) -> String {
    let body = html! {
        (notice(notice_text))
        p { "Orders flagged for review refuse start, capture, cancel, refund and transfer confirmation until resolved; provider reports and expiry still apply." }
        @match list {
            Err(e) => p.error { (e) },
            Ok(list) if list.orders.is_empty() => p #review-empty { "Nothing to review." },
            Ok(list) => {
                @if list.truncated {
                    p #review-truncated.error { "Showing the first " (list.orders.len()) " flagged orders; more are waiting (resolve these, or list them all with " code { "paystate review list" } ")." }
                }
                table #review-queue {
                tr { th { "order" } th { "state" } th { "provider" } th { "last discrepancy" } th { "resolve" } }
                @for v in &list.orders {
                    tr.review {
                        td { a.order-link href={ (BASE) "/orders/" (v.order_id) } { (v.order_id) } }
                        td { (v.status) } td { (v.provider) }
                        td { @if let Some(d) = v.discrepancies.last() { (d.code) ": " (d.detail) } }
                        td { (resolve_form(session, &v.order_id, can_resolve)) }
                    }
                }
                }
            },
        }
    };
    layout("Review queue", Some(session), body)
}

pub fn dead_letters_page(
    session: &Session,
    page: Result<&DeadLetterPage, &str>,
    can_redrive: bool,
    notice_text: Option<&str>,
) -> String {
    // Why the next page's link even when this one is empty: a listing stops at its scan bound
    // (redriven letters and markers count), so an empty page is not "none waiting" while the
    // stream goes on.
    let next = page.ok().and_then(|p| p.next_seq);
    let letters = page.map(|p| p.letters.as_slice());
    let body = html! {
        (notice(notice_text))
        @match letters {
            Err(e) => p.error { (e) },
            Ok([]) if next.is_some() => p #dead-none-here { "None waiting in this part of the dead-letter stream." },
            Ok([]) => p #dead-empty { "No dead letters waiting." },
            Ok(letters) => table #dead-letters {
                tr { th { "seq" } th { "source" } th { "order" } th { "reason" } th { "set aside" } th { "deliveries" } th { "redrive" } }
                @for d in letters {
                    tr.dead-letter {
                        td { (d.seq) } td { (format!("{:?}", d.source).to_lowercase()) } td { (d.order) }
                        td { (d.reason) } td { (d.time.format("%Y-%m-%d %H:%M:%S")) }
                        td { (d.deliveries.map(|n| n.to_string()).unwrap_or_default()) }
                        td {
                            @if let Some(r) = &d.redriven { "redriven to " (r.to) }
                            @else if can_redrive {
                                form.inline method="post" action={ (BASE) "/dead-letters/" (d.seq) "/redrive" } {
                                    input type="hidden" name="csrf" value=(session.csrf);
                                    button type="submit" { "Redrive" }
                                }
                            } @else { "needs an admin key" }
                        }
                    }
                }
            },
        }
        @if let Some(n) = next {
            p #dead-next { a href={ (BASE) "/dead-letters?from=" (n) } { "Next page (from stream sequence " (n) ")" } }
        }
    };
    layout("Dead letters", Some(session), body)
}

pub struct HealthPage<'a> {
    pub projection: Result<&'a ProjectionStatus, &'a str>,
    pub providers: Result<&'a [ProviderHealth], &'a str>,
    pub callbacks: Option<&'a CallbackStats>,
    pub now: paystate_events::Timestamp,
}

pub fn health_page(session: &Session, h: HealthPage<'_>) -> String {
    let ago = |t: paystate_events::Timestamp| {
        let secs = (h.now - t).num_seconds().max(0);
        format!("{} ({secs} s ago)", t.format("%Y-%m-%d %H:%M:%S"))
    };
    let body = html! {
        h2 { "Projection" }
        @match h.projection {
            Err(e) => p.error { (e) },
            Ok(p) => table #projection {
                tr { th { "generation" } td { (p.generation.generation) } }
                tr { th { "lag (log messages behind)" } td #lag { (p.lag) } }
                tr { th { "applied through seq" } td { (p.applied_seq) } }
                tr { th { "log last seq" } td { (p.log_last_seq) } }
                tr { th { "orders" } td { (p.orders) } }
            },
        }
        h2 { "Provider callbacks" }
        @if let Some(c) = h.callbacks {
            @let (received, rejected) = (c.received.load(Relaxed), c.rejected.load(Relaxed));
            p #callback-counters {
                "This gateway since start: " (received) " received, " (c.applied.load(Relaxed)) " applied, "
                (c.duplicates.load(Relaxed)) " duplicates, " (rejected) " rejected"
                @if received > 0 { " (error rate " (format!("{:.1}", 100.0 * rejected as f64 / received as f64)) " %)" }
            }
        }
        @match h.providers {
            Err(e) => p.error { (e) },
            Ok(list) => table #providers {
                tr { th { "provider" } th { "last callback seen" } th { "last verdict" }
                     th { "callbacks (rejected)" } th { "callback error rate" }
                     th { "provider calls (errors)" } th { "call error rate" } }
                @for p in list {
                    tr { td { (p.provider) }
                         td { @if let Some(t) = p.last_callback { (ago(t)) } @else { "never" } }
                         td { @if let Some((v, t)) = &p.last_verdict { (v) " at " (ago(*t)) } }
                         @if let Some(c) = &p.counts {
                             td { (c.callbacks) " (" (c.callbacks_rejected) ")" }
                             td { (percent(ProviderCounts::rate(c.callbacks_rejected, c.callbacks))) }
                             td { (c.calls) " (" (c.call_errors) ")" }
                             td { (percent(ProviderCounts::rate(c.call_errors, c.calls))) }
                         } @else {
                             td colspan="4" { "no metrics recorder in this process" }
                         }
                    }
                }
            },
        }
        p { "Counters are this gateway process's since it started (all roles of a "
            code { "paystate run" } " or " code { "paystate dev" } " process); every process exports them, with latency histograms, at "
            code { "/metrics" } "." }
    };
    layout("Health", Some(session), body)
}

fn percent(rate: Option<f64>) -> String {
    rate.map(|r| format!("{r:.1} %"))
        .unwrap_or_else(|| "–".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        let page = message_page("<t>", "<script>alert(1)</script> & \"x\"");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;"));
        assert!(page.contains("&lt;t&gt;"));
        let login = login_page(Some("<img src=x>"));
        assert!(!login.contains("<img") && login.contains("&lt;img src=x&gt;"));
    }

    #[test]
    fn an_empty_stretch_of_dead_letters_is_not_none_waiting_and_links_the_next_page() {
        let sessions = super::super::session::Sessions::default();
        let (_, s) = sessions
            .open("ops", crate::auth::Scope::Admin)
            .expect("session");
        // Given a listing that stopped at its scan bound with nothing to show yet ...
        let stopped = DeadLetterPage {
            letters: vec![],
            next_seq: Some(10_001),
        };
        let page = dead_letters_page(&s, Ok(&stopped), true, None);
        // ... then the page does not say none are waiting, and links where to go on.
        assert!(!page.contains("No dead letters waiting"), "{page}");
        assert!(page.contains("dead-letters?from=10001"), "{page}");
        // And a listing that reached the end says so, with no link.
        let end = DeadLetterPage {
            letters: vec![],
            next_seq: None,
        };
        let page = dead_letters_page(&s, Ok(&end), true, None);
        assert!(page.contains("No dead letters waiting") && !page.contains("from="));
    }

    #[test]
    fn a_cut_review_queue_says_more_are_waiting() {
        let sessions = super::super::session::Sessions::default();
        let (_, s) = sessions
            .open("ops", crate::auth::Scope::Read)
            .expect("session");
        let state = paystate_adapters::testing::order(
            Provider::Plural,
            100,
            "INR",
            paystate_events::CaptureMode::Manual,
        );
        let view = OrderView::from(&paystate_projection::ProjectedOrder {
            seq: 1,
            state: paystate_events::StateView::of(&state),
            provider_refs: Default::default(),
            problem: None,
        });
        let list = |truncated| OrderList {
            orders: vec![view.clone()],
            scanned: 1,
            truncated,
            generation: 1,
        };
        assert!(review_page(&s, Ok(&list(true)), false, None).contains("more are waiting"));
        assert!(!review_page(&s, Ok(&list(false)), false, None).contains("more are waiting"));
    }

    #[test]
    fn forms_carry_the_csrf_token() {
        let sessions = super::super::session::Sessions::default();
        let (_, s) = sessions
            .open("ops", crate::auth::Scope::Write)
            .expect("session");
        let form = resolve_form(&s, "o-1", true).into_string();
        assert!(
            form.contains(&format!("name=\"csrf\" value=\"{}\"", s.csrf)),
            "{form}"
        );
        assert!(!resolve_form(&s, "o-1", false)
            .into_string()
            .contains("<form"));
    }
}
