//! Lambda entry point of the notification consumer: consumes `email-notification-queue` and
//! writes the notifications (and outbox emails) of people; sellers' inboxes are the seller-inbox
//! consumer's.

use notifications_api::compose::Audience;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    notifications_api::run_consumer(Audience::Users, "notification-consumer").await
}
