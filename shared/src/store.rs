//! DynamoDB helpers shared by the services' stores.

/// A DynamoDB SDK error as one line with its whole chain of causes (the SDK's own `Display`
/// says only "service error").
pub fn dynamo_error<E: std::error::Error + 'static>(e: aws_sdk_dynamodb::error::SdkError<E>) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()
}
