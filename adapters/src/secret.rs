//! [`Secret`]: a credential that will not print (defined once, in `paystate-events`).

pub use paystate_events::Secret;
