//! Alert e-mail through the operator's SMTP server: its settings (`smtp`), who receives what
//! (`recipients`), the words of each message (`compose`), the outbox that keeps every message
//! until the server takes it (`outbox`), and the worker pass that fills and empties it
//! (`mailer`). Alerts themselves are raised in `jobs::alerts`; this module only tells people
//! about them and never changes whether an alert is open.

pub mod compose;
pub mod entities;
pub mod mailer;
pub mod outbox;
pub mod recipients;
pub mod smtp;
