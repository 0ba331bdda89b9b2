//! `devstack provision` against the emulator: idempotent, and loud about what it cannot do.

use std::collections::BTreeMap;

use devstack::provision::provision;
use devstack::stack::Stack;
use devstack::template::Template;
use integration_tests::{unique, workspace_root, Local};

async fn counts(local: &Local) -> (usize, usize, usize) {
    let queues =
        local.aws.sqs.list_queues().max_results(1000).send().await.unwrap().queue_urls.unwrap_or_default().len();
    let topics = local.aws.sns.list_topics().send().await.unwrap().topics.unwrap_or_default().len();
    let subscriptions =
        local.aws.sns.list_subscriptions().send().await.unwrap().subscriptions.unwrap_or_default().len();
    (queues, topics, subscriptions)
}

#[tokio::test]
async fn provisioning_twice_changes_nothing() {
    let local = Local::connect().await;
    let template = Template::load(&workspace_root().join("infra/template.yaml")).unwrap();
    let fresh = || Stack::new(&local.stack.stack_name, &local.stack.region, local.stack.parameters.clone());

    let first = provision(&template, &local.aws, fresh()).await.expect("first provision");
    let before = counts(&local).await;
    let second = provision(&template, &local.aws, fresh()).await.expect("second provision");
    assert_eq!(counts(&local).await, before, "a second provision added queues, topics or subscriptions");
    for (id, r) in &first.resources {
        assert_eq!(r.physical_id, second.resources[id].physical_id, "{id} changed identity");
    }
    // Each of the template's subscriptions exists exactly once.
    let subs =
        local.aws.sns.list_subscriptions_by_topic().topic_arn(local.id("ProductEventsTopic")).send().await.unwrap();
    let endpoints: Vec<_> = subs.subscriptions().iter().filter_map(|s| s.endpoint()).collect();
    let mut deduped = endpoints.clone();
    deduped.sort();
    deduped.dedup();
    let in_template = template
        .resources()
        .into_iter()
        .filter(|r| r.kind == "AWS::SNS::Subscription")
        .filter(|r| r.properties["TopicArn"] == serde_json::json!({"Ref": "ProductEventsTopic"}))
        .count();
    assert!(in_template >= 2, "the template subscribes several queues to product events");
    assert_eq!(endpoints.len(), in_template, "{endpoints:?}");
    assert_eq!(deduped.len(), endpoints.len());
}

#[tokio::test]
async fn the_queues_have_the_template_settings_and_raw_filtered_subscriptions() {
    let local = Local::connect().await;
    let attrs = local
        .aws
        .sqs
        .get_queue_attributes()
        .queue_url(local.id("OrderProcessingQueue"))
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    use aws_sdk_sqs::types::QueueAttributeName as Q;
    assert_eq!(attrs[&Q::VisibilityTimeout], "600");
    let redrive: serde_json::Value = serde_json::from_str(&attrs[&Q::RedrivePolicy]).unwrap();
    assert!(redrive["deadLetterTargetArn"].as_str().unwrap().ends_with("order-processing-dlq"));

    let sub = &local.stack.resources["ProductEventsToSearchIndex"].physical_id;
    let sub_attrs =
        local.aws.sns.get_subscription_attributes().subscription_arn(sub).send().await.unwrap().attributes.unwrap();
    assert_eq!(sub_attrs["RawMessageDelivery"], "true");
    assert!(sub_attrs["FilterPolicy"].contains("product.created"));
}

#[tokio::test]
async fn an_unsupported_resource_type_stops_provisioning_and_names_the_resource() {
    let local = Local::connect().await;
    let queue = unique("never-created");
    let template = Template::parse(&format!(
        "Resources:\n  FirstQueue:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: {queue}\n  WebServer:\n    Type: AWS::EC2::Instance\n    Properties:\n      ImageId: ami-123\n"
    ))
    .unwrap();
    let stack = Stack::new("unsupported", &local.stack.region, BTreeMap::new());
    let err = provision(&template, &local.aws, stack).await.unwrap_err().to_string();
    assert!(err.contains("WebServer") && err.contains("AWS::EC2::Instance"), "{err}");
    // Refused before anything was created.
    assert!(local.aws.sqs.get_queue_url().queue_name(&queue).send().await.is_err());
}
