//! Lambda entry point of the seller-inbox consumer: consumes `order-processing-queue` (seed 001
//! §5.2, the seller service's subscription to order events) and fills each seller's inbox with
//! what they must act on: new and paid orders to ship, returns to decide.

use notifications_api::compose::Audience;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    notifications_api::run_consumer(Audience::Sellers, "seller-inbox-consumer").await
}
