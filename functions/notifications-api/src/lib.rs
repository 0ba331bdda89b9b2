//! The notifications service (seed 004 §4-§5): who is told what when something happens to their
//! account or their orders. This crate is the API (a user's notifications, marking them read) and
//! the domain and store it shares with `notification-consumer`, which turns events from
//! `email-notification-queue` into notifications and writes the matching emails to an outbox
//! table rather than sending them.

pub mod api;
pub mod compose;
pub mod store;
