//! How the notifications of several inboxes (a seller's own and their seller account's) become
//! one list.
//!
//! Within an inbox the order is the inbox's numbering: the order the inbox was told things in,
//! which is what cursors, long polling and SSE resume from. It is not the order of the events'
//! timestamps: events come off a standard queue, so a later event can be numbered first. Between
//! inboxes there is no numbering to follow, so their lists are interleaved by time, without ever
//! reordering either one.

use crate::compose::Notification;

/// Which end of the inboxes comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    OldestFirst,
    NewestFirst,
}

/// Merges per-inbox lists, each already in its inbox's order (`seq` ascending for
/// [`Order::OldestFirst`], descending for [`Order::NewestFirst`]), into one list that keeps every
/// inbox's order and otherwise goes by `created_at`.
pub fn interleave(inboxes: Vec<Vec<Notification>>, order: Order) -> Vec<Notification> {
    let total = inboxes.iter().map(Vec::len).sum();
    let mut queues: Vec<std::collections::VecDeque<Notification>> = inboxes.into_iter().map(Into::into).collect();
    let mut out = Vec::with_capacity(total);
    loop {
        let heads = queues.iter().enumerate().filter_map(|(i, q)| q.front().map(|n| (i, n.created_at)));
        let next = match order {
            Order::OldestFirst => heads.min_by_key(|&(_, at)| at),
            Order::NewestFirst => heads.max_by_key(|&(_, at)| at),
        };
        let Some((i, _)) = next else { return out };
        out.extend(queues[i].pop_front());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn note(inbox: &str, seq: u64, minute: i64) -> Notification {
        Notification {
            inbox: inbox.into(),
            id: format!("{inbox}-{seq}"),
            seq,
            kind: "order.paid".into(),
            title: String::new(),
            body: String::new(),
            subject_id: String::new(),
            read: false,
            created_at: Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap() + Duration::minutes(minute),
        }
    }

    fn seqs(list: &[Notification]) -> Vec<(String, u64)> {
        list.iter().map(|n| (n.inbox.clone(), n.seq)).collect()
    }

    #[test]
    fn an_inbox_keeps_its_numbering_even_when_timestamps_disagree() {
        // Event 5 was stamped before event 4 but arrived (and was numbered) after it.
        let user = vec![note("u", 3, 1), note("u", 4, 5), note("u", 5, 3)];
        let merged = interleave(vec![user.clone()], Order::OldestFirst);
        assert_eq!(seqs(&merged), seqs(&user));
        let newest: Vec<_> = user.into_iter().rev().collect();
        assert_eq!(seqs(&interleave(vec![newest.clone()], Order::NewestFirst)), seqs(&newest));
    }

    #[test]
    fn inboxes_are_interleaved_by_time() {
        let user = vec![note("u", 1, 1), note("u", 2, 4)];
        let seller = vec![note("s", 1, 2), note("s", 2, 3), note("s", 3, 9)];
        let merged = interleave(vec![user, seller], Order::OldestFirst);
        let expected: Vec<(String, u64)> =
            [("u", 1), ("s", 1), ("s", 2), ("u", 2), ("s", 3)].iter().map(|(i, s)| (i.to_string(), *s)).collect();
        assert_eq!(seqs(&merged), expected);
    }
}
