//! Which pairs an order teaches. Plain Rust, no I/O.

use serde::{Deserialize, Serialize};
use shared::events::OrderLine;
use shared::Money;

/// A product as a recommendation shows it (from the order lines that taught it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommended {
    pub product_id: String,
    pub name: String,
    pub price: Money,
    /// Paid orders that held both products.
    pub times_bought_together: u64,
}

/// Every unordered pair of distinct products of an order, once each.
pub fn pairs(lines: &[OrderLine]) -> Vec<(&OrderLine, &OrderLine)> {
    let mut distinct: Vec<&OrderLine> = Vec::new();
    for line in lines {
        if !distinct.iter().any(|l| l.product_id == line.product_id) {
            distinct.push(line);
        }
    }
    let mut out = Vec::new();
    for (i, a) in distinct.iter().enumerate() {
        for b in &distinct[i + 1..] {
            out.push((*a, *b));
        }
    }
    out
}

/// Most bought-together first; ties by name so that answers are stable.
pub fn rank(items: &mut [Recommended]) {
    items.sort_by(|a, b| b.times_bought_together.cmp(&a.times_bought_together).then_with(|| a.name.cmp(&b.name)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str) -> OrderLine {
        OrderLine {
            product_id: id.into(),
            seller_id: "s".into(),
            name: id.into(),
            unit_price: Money { amount: 1, currency: "JPY".into() },
            quantity: 1,
        }
    }

    #[test]
    fn each_pair_once() {
        let lines = [line("a"), line("b"), line("c"), line("a")];
        let ids: Vec<_> = pairs(&lines).iter().map(|(x, y)| format!("{}{}", x.product_id, y.product_id)).collect();
        assert_eq!(ids, vec!["ab", "ac", "bc"]);
        assert!(pairs(&[line("a")]).is_empty(), "one product teaches nothing");
    }

    #[test]
    fn ranked_by_count() {
        let r = |id: &str, n| Recommended {
            product_id: id.into(),
            name: id.into(),
            price: Money { amount: 1, currency: "JPY".into() },
            times_bought_together: n,
        };
        let mut items = vec![r("b", 1), r("a", 3), r("c", 3)];
        rank(&mut items);
        assert_eq!(items.iter().map(|i| i.product_id.as_str()).collect::<Vec<_>>(), vec!["a", "c", "b"]);
    }
}
