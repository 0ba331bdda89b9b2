"""The deploy rehearsal's steps around `sam deploy` and `cargo lambda deploy`
(infra/scripts/deploy-local.sh).

    deploy_local.py binaries
        The binary of every function of the template (Metadata.BuildProperties.Binary).
    deploy_local.py zip BIN_DIR OUT_DIR
        Each of those binaries of BIN_DIR, stripped, as OUT_DIR/<binary>.zip holding `bootstrap`.
    deploy_local.py bucket NAME
        Creates the S3 bucket `sam deploy` uploads the code to, unless it exists.
    deploy_local.py build-template OUT ZIPS_DIR
        infra/template.yaml with the local overlay (infra/deploy-local/overlay.yaml) merged in and
        each function's CodeUri pointing at its zip, as `sam build` leaves its build template.
    deploy_local.py verify STACK_NAME [--quiet]
        Every resource of the stack is CREATE_COMPLETE (each one is listed, unless --quiet); then
        what MiniStack made of the template is read back and compared with the template: each
        function's settings and environment, its SQS event source mappings and schedules, each
        SNS subscription with its filter policy, each queue's dead-letter queue, each REST route
        with its authorizer and function, the WebSocket routes and the function URL. Exits 1 on
        any difference, naming it.
    deploy_local.py physical-id STACK_NAME LOGICAL_ID
    deploy_local.py api-url STACK_NAME
        The REST API's URL on MiniStack's API Gateway.
    deploy_local.py wait-for-build URL BUILD_ID
        GETs URL until the answer's x-build-id is BUILD_ID (60 s at most).

Runs on .venv-deploy's Python (boto3 comes with the SAM CLI), against the endpoint in
AWS_ENDPOINT_URL.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import boto3
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
OVERLAY = ROOT / "infra" / "deploy-local" / "overlay.yaml"


# ---- the template, with its short-form intrinsics kept as their long form ----------------------

class CfnLoader(yaml.SafeLoader):
    pass


def _intrinsic(name):
    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}
    return construct


for _tag, _name in {"!Ref": "Ref", "!GetAtt": "Fn::GetAtt", "!Sub": "Fn::Sub", "!Condition": "Condition"}.items():
    CfnLoader.add_constructor(_tag, _intrinsic(_name))
# The rest read as their long form (`!If` as `Fn::If`, ...): the rehearsal reads back none of them.
for _name in ["And", "Equals", "If", "Not", "Or", "Select", "Split", "Join", "FindInMap", "Base64"]:
    CfnLoader.add_constructor(f"!{_name}", _intrinsic(f"Fn::{_name}"))


def load(path):
    return yaml.load(path.read_text(), Loader=CfnLoader)


def merge(base, overlay):
    """The overlay's mappings merged into base's, key by key; anything else replaces."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return overlay


def functions(template):
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            yield logical_id, resource


def binaries():
    return sorted({r["Metadata"]["BuildProperties"]["Binary"] for _, r in functions(load(TEMPLATE))})


def zip_binaries(bin_dir, out_dir):
    """What `cargo lambda build --output-format zip` makes, from binaries built already."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for binary in binaries():
            source = Path(bin_dir) / binary
            if not source.is_file():
                sys.exit(f"{source} is missing: build it first (cargo build --workspace --bins)")
            bootstrap = Path(tmp) / "bootstrap"
            # Debug binaries carry their symbols; stripped they are a fifth of the size.
            if shutil.which("strip"):
                subprocess.run(["strip", "-o", str(bootstrap), str(source)], check=True)
            else:
                shutil.copyfile(source, bootstrap)
            info = zipfile.ZipInfo("bootstrap", date_time=time.gmtime()[:6])
            info.external_attr = 0o100755 << 16  # a regular file, executable
            info.compress_type = zipfile.ZIP_DEFLATED
            with zipfile.ZipFile(Path(out_dir) / f"{binary}.zip", "w") as archive:
                archive.writestr(info, bootstrap.read_bytes())
    print(f"deploy-local: {len(binaries())} zips in {out_dir}")


def create_bucket(name):
    s3 = boto3.client("s3")
    try:
        s3.head_bucket(Bucket=name)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=name)


def build_template(out, zips):
    template = merge(load(TEMPLATE), load(OVERLAY) or {})
    api_auth = template["Resources"]["MarketplaceApi"]["Properties"]["Auth"]
    for logical_id, resource in functions(template):
        # With API keys off for the whole API (the overlay), SAM refuses an event that turns
        # them off again (the CORS preflights): it says nothing more there, so drop it.
        if not api_auth.get("ApiKeyRequired"):
            for event in (resource["Properties"].get("Events") or {}).values():
                (event.get("Properties", {}).get("Auth") or {}).pop("ApiKeyRequired", None)
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        archive = Path(zips) / f"{binary}.zip"
        if not archive.is_file():
            sys.exit(f"{logical_id}: no package {archive}")
        resource["Properties"]["CodeUri"] = str(archive)
        # Packaged already: `sam deploy` uploads the zip as it is.
        resource.pop("Metadata", None)
    Path(out).write_text(json.dumps(template, indent=1))
    print(f"deploy-local: {out}: infra/template.yaml + {OVERLAY.relative_to(ROOT)}, "
          f"{sum(1 for _ in functions(template))} functions packaged from {zips}")


# ---- reading the deployed stack back -----------------------------------------------------------

class Deployed:
    """The stack as CloudFormation and the services report it, and the template's intrinsics
    resolved against it."""

    def __init__(self, stack_name):
        self.stack_name = stack_name
        self.cfn = boto3.client("cloudformation")
        self.lambda_ = boto3.client("lambda")
        self.sqs = boto3.client("sqs")
        self.sns = boto3.client("sns")
        self.apigw = boto3.client("apigateway")
        self.apigwv2 = boto3.client("apigatewayv2")
        self.events = boto3.client("events")
        self.cloudwatch = boto3.client("cloudwatch")
        self.dynamodb = boto3.client("dynamodb")
        self.region = self.cfn.meta.region_name
        stack = self.cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        self.parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
        self.account = stack["StackId"].split(":")[4]
        self.resources = []
        for page in self.cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
            self.resources.extend(page["StackResourceSummaries"])
        self.physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in self.resources}

    def ref(self, name):
        pseudo = {"AWS::StackName": self.stack_name, "AWS::Region": self.region, "AWS::AccountId": self.account,
                  "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical[name]

    def get_att(self, logical_id, attribute, kind):
        physical = self.physical[logical_id]
        if kind == "AWS::SQS::Queue":
            if attribute == "Arn":
                return self.sqs.get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])[
                    "Attributes"]["QueueArn"]
            if attribute == "QueueName":
                return physical.rstrip("/").rsplit("/", 1)[-1]
        if kind == "AWS::SNS::Topic" and attribute == "TopicName":
            return physical.rsplit(":", 1)[-1]
        if kind == "AWS::Serverless::Function" and attribute == "Arn":
            return self.lambda_.get_function_configuration(FunctionName=physical)["FunctionArn"]
        if kind == "AWS::DynamoDB::Table" and attribute == "Arn":
            return f"arn:aws:dynamodb:{self.region}:{self.account}:table/{physical}"
        if kind == "AWS::DynamoDB::Table" and attribute == "StreamArn":
            return self.dynamodb.describe_table(TableName=physical)["Table"]["LatestStreamArn"]
        raise KeyError(f"Fn::GetAtt {logical_id}.{attribute} ({kind}) is not known to the rehearsal")

    def condition(self, name, template):
        return bool(self.resolve(template["Conditions"][name], template))

    def resolve(self, value, template):
        if isinstance(value, dict) and len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.get_att(arg[0], arg[1], template["Resources"][arg[0]]["Type"])
            if key == "Fn::If":
                condition, chosen, other = arg
                return self.resolve(chosen if self.condition(condition, template) else other, template)
            if key == "Condition":
                return self.condition(arg, template)
            if key == "Fn::Equals":
                left, right = (self.resolve(a, template) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0], template)
            if key == "Fn::And":
                return all(self.resolve(a, template) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a, template) for a in arg)
            if key == "Fn::Select":
                return self.resolve(arg[1], template)[int(self.resolve(arg[0], template))]
            if key == "Fn::Split":
                return str(self.resolve(arg[1], template)).split(arg[0])
            if key == "Fn::Sub":
                def field(m):
                    name = m.group(1)
                    if "." in name:
                        logical_id, attribute = name.split(".", 1)
                        return self.get_att(logical_id, attribute, template["Resources"][logical_id]["Type"])
                    return str(self.ref(name))
                return re.sub(r"\$\{([^}!]+)\}", field, arg)
        if isinstance(value, dict):
            return {k: self.resolve(v, template) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, template) for v in value]
        return value


class Differences:
    def __init__(self):
        self.found = []
        self.checked = 0

    def expect(self, what, wanted, actual):
        self.checked += 1
        if wanted != actual:
            self.found.append(f"{what}: the template says {wanted!r}, the deployed stack has {actual!r}")


def as_json(value):
    # An attribute that is not set may read back as "" (MiniStack's FilterPolicy) or not at all.
    if value == "":
        return None
    return json.loads(value) if isinstance(value, str) else value


def verify(stack_name, quiet=False):
    template = merge(load(TEMPLATE), load(OVERLAY) or {})
    stack = Deployed(stack_name)
    diff = Differences()

    # Every resource CloudFormation made, with its status.
    print(f"deploy-local: stack {stack_name}: {len(stack.resources)} resources")
    for r in sorted(stack.resources, key=lambda r: (r["ResourceType"], r["LogicalResourceId"])):
        if not quiet:
            print(f"  {r['ResourceStatus']:<16} {r['ResourceType']:<34} {r['LogicalResourceId']}")
    failed = [r for r in stack.resources if r["ResourceStatus"] != "CREATE_COMPLETE"
              and r["ResourceStatus"] != "UPDATE_COMPLETE"]
    for r in failed:
        diff.found.append(f"{r['LogicalResourceId']} ({r['ResourceType']}) is {r['ResourceStatus']}: "
                          f"{r.get('ResourceStatusReason', '')}")
    # Each resource of the template is in the stack (SAM adds roles, permissions, mappings...).
    for logical_id in template["Resources"]:
        diff.expect(f"{logical_id} in the stack", True, logical_id in stack.physical)

    globals_ = template.get("Globals", {}).get("Function", {})
    api_id = stack.physical["MarketplaceApi"]
    routes = rest_routes(stack, api_id)
    for logical_id, resource in functions(template):
        props = {**globals_, **resource["Properties"]}
        name = stack.physical[logical_id]
        config = stack.lambda_.get_function_configuration(FunctionName=name)
        for key in ["Runtime", "Handler", "MemorySize", "Timeout", "Architectures"]:
            diff.expect(f"{logical_id} {key}", stack.resolve(props.get(key), template), config.get(key))
        env = {**globals_.get("Environment", {}).get("Variables", {}),
               **resource["Properties"].get("Environment", {}).get("Variables", {})}
        wanted_env = {k: str(v) for k, v in stack.resolve(env, template).items()}
        diff.expect(f"{logical_id} environment", wanted_env, config.get("Environment", {}).get("Variables", {}))
        tracing = "Active" if props.get("Tracing") == "Active" else "PassThrough"
        diff.expect(f"{logical_id} tracing", tracing, config.get("TracingConfig", {}).get("Mode"))

        mappings = stack.lambda_.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
        by_source = {m["EventSourceArn"]: m for m in mappings}
        for event_name, event in (resource["Properties"].get("Events") or {}).items():
            what = f"{logical_id} event {event_name}"
            p = event.get("Properties", {})
            if event["Type"] == "SQS":
                queue_arn = stack.resolve(p["Queue"], template)
                m = by_source.get(queue_arn)
                diff.expect(f"{what}: an event source mapping from {queue_arn}", True, m is not None)
                if m:
                    diff.expect(f"{what} BatchSize", p.get("BatchSize", 10), m.get("BatchSize"))
                    diff.expect(f"{what} FunctionResponseTypes", p.get("FunctionResponseTypes", []),
                                m.get("FunctionResponseTypes", []))
                    diff.expect(f"{what} state", "Enabled" if p.get("Enabled", True) else "Disabled",
                                m.get("State"))
            elif event["Type"] == "DynamoDB":
                stream_arn = stack.resolve(p["Stream"], template)
                m = by_source.get(stream_arn)
                diff.expect(f"{what}: an event source mapping from {stream_arn}", True, m is not None)
                if m:
                    for key, default in [("StartingPosition", None), ("BatchSize", 100),
                                         ("BisectBatchOnFunctionError", False), ("MaximumRetryAttempts", -1),
                                         ("MaximumRecordAgeInSeconds", -1), ("FunctionResponseTypes", [])]:
                        wanted = stack.resolve(p.get(key, default), template)
                        if isinstance(wanted, str) and wanted.lstrip("-").isdigit():
                            wanted = int(wanted)  # a parameter's value
                        diff.expect(f"{what} {key}", wanted, m.get(key, default))
                    on_failure = (p.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
                    diff.expect(f"{what} on-failure destination", stack.resolve(on_failure, template),
                                m.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"))
                    patterns = [as_json(f["Pattern"]) for f in (p.get("FilterCriteria") or {}).get("Filters", [])]
                    diff.expect(f"{what} filter patterns", patterns,
                                [as_json(f["Pattern"]) for f in m.get("FilterCriteria", {}).get("Filters", [])])
            elif event["Type"] == "Api":
                method, path = p["Method"].upper(), p["Path"]
                found = routes.get((path, method))
                diff.expect(f"{what}: route {method} {path}", True, found is not None)
                if found:
                    auth = (p.get("Auth") or {}).get("Authorizer") or \
                        template["Resources"]["MarketplaceApi"]["Properties"]["Auth"].get("DefaultAuthorizer")
                    # `NONE` (the CORS preflights): a method without an authorizer.
                    diff.expect(f"{what}: route {method} {path} authorizer", None if auth == "NONE" else auth,
                                found["authorizer"])
                    diff.expect(f"{what}: route {method} {path} integration", name, found["function"])
                    api_keys = template["Resources"]["MarketplaceApi"]["Properties"]["Auth"].get("ApiKeyRequired")
                    diff.expect(f"{what}: route {method} {path} API key required",
                                bool((p.get("Auth") or {}).get("ApiKeyRequired", api_keys)),
                                found["api_key_required"])
            elif event["Type"] == "Schedule":
                rules = stack.events.list_rule_names_by_target(TargetArn=config["FunctionArn"])["RuleNames"]
                expressions = [stack.events.describe_rule(Name=r).get("ScheduleExpression") for r in rules]
                diff.expect(f"{what}: a rule {p['Schedule']} targeting the function", True,
                            p["Schedule"] in expressions)
        if "FunctionUrlConfig" in resource["Properties"]:
            url = stack.lambda_.get_function_url_config(FunctionName=name)
            wanted = resource["Properties"]["FunctionUrlConfig"]
            diff.expect(f"{logical_id} function URL auth", wanted.get("AuthType"), url.get("AuthType"))
            diff.expect(f"{logical_id} function URL invoke mode", wanted.get("InvokeMode", "BUFFERED"),
                        url.get("InvokeMode", "BUFFERED"))

    # Every route of the API comes from the template (none left over from elsewhere).
    declared = {(e["Properties"]["Path"], e["Properties"]["Method"].upper())
                for _, r in functions(template) for e in (r["Properties"].get("Events") or {}).values()
                if e["Type"] == "Api"}
    diff.expect("the REST API's routes", sorted(declared), sorted(routes))

    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::SNS::Subscription":
            topic = stack.resolve(props["TopicArn"], template)
            endpoint = stack.resolve(props["Endpoint"], template)
            subs = [s for s in list_subscriptions(stack.sns, topic) if s["Endpoint"] == endpoint]
            diff.expect(f"{logical_id}: one subscription of {endpoint} to {topic}", 1, len(subs))
            if subs:
                attrs = stack.sns.get_subscription_attributes(SubscriptionArn=subs[0]["SubscriptionArn"])[
                    "Attributes"]
                diff.expect(f"{logical_id} protocol", props["Protocol"], subs[0]["Protocol"])
                diff.expect(f"{logical_id} raw delivery", str(bool(props.get("RawMessageDelivery"))).lower(),
                            attrs.get("RawMessageDelivery", "false").lower())
                diff.expect(f"{logical_id} filter policy", as_json(props.get("FilterPolicy")),
                            as_json(attrs.get("FilterPolicy")))
                if "FilterPolicy" in props:
                    diff.expect(f"{logical_id} filter policy scope", props.get("FilterPolicyScope", "MessageAttributes"),
                                attrs.get("FilterPolicyScope", "MessageAttributes"))
                if "RedrivePolicy" in props:
                    diff.expect(f"{logical_id} redrive policy", as_json(stack.resolve(props["RedrivePolicy"], template)),
                                as_json(attrs.get("RedrivePolicy")))
        elif resource["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in props:
            attrs = stack.sqs.get_queue_attributes(QueueUrl=stack.physical[logical_id],
                                                   AttributeNames=["RedrivePolicy", "VisibilityTimeout"])["Attributes"]
            wanted = stack.resolve(props["RedrivePolicy"], template)
            actual = as_json(attrs.get("RedrivePolicy", "{}"))
            diff.expect(f"{logical_id} dead-letter queue", wanted.get("deadLetterTargetArn"),
                        actual.get("deadLetterTargetArn"))
            diff.expect(f"{logical_id} maxReceiveCount", int(wanted.get("maxReceiveCount")),
                        int(actual.get("maxReceiveCount", 0)))
        elif resource["Type"] == "AWS::CloudWatch::Alarm":
            name = stack.resolve(props["AlarmName"], template)
            alarms = stack.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
            diff.expect(f"{logical_id}: the alarm {name}", 1, len(alarms))
            if alarms:
                alarm = alarms[0]
                for key in ["Namespace", "MetricName", "Statistic", "Period", "EvaluationPeriods",
                            "ComparisonOperator"]:
                    diff.expect(f"{logical_id} {key}", stack.resolve(props[key], template), alarm.get(key))
                diff.expect(f"{logical_id} Threshold", float(props["Threshold"]), float(alarm.get("Threshold", -1)))
                diff.expect(f"{logical_id} dimensions", stack.resolve(props["Dimensions"], template),
                            alarm.get("Dimensions"))
                diff.expect(f"{logical_id} alarm actions", stack.resolve(props["AlarmActions"], template),
                            alarm.get("AlarmActions"))
        elif resource["Type"] == "AWS::DynamoDB::Table":
            table = stack.dynamodb.describe_table(TableName=stack.physical[logical_id])["Table"]
            # Not TimeToLiveSpecification: MiniStack's CloudFormation does not apply it (README,
            # "Deploy rehearsal").
            diff.expect(f"{logical_id} key schema", props["KeySchema"], table.get("KeySchema"))
            diff.expect(f"{logical_id} billing mode", props.get("BillingMode", "PROVISIONED"),
                        table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED"))
        elif resource["Type"] == "AWS::ApiGateway::UsagePlan":
            plans = stack.apigw.get_usage_plans()["items"]
            name = stack.resolve(props["UsagePlanName"], template)
            plan = next((p for p in plans if p["name"] == name), None)
            diff.expect(f"{logical_id}: the usage plan {name}", True, plan is not None)
            if plan:
                wanted = stack.resolve(props["Throttle"], template)
                throttle = plan.get("throttle", {})
                diff.expect(f"{logical_id} throttle", (float(wanted["RateLimit"]), int(wanted["BurstLimit"])),
                            (float(throttle.get("rateLimit", -1)), int(throttle.get("burstLimit", -1))))
        elif resource["Type"] == "AWS::ApiGatewayV2::Route":
            api = stack.physical[props["ApiId"]["Ref"]]
            keys = {r["RouteKey"] for r in stack.apigwv2.get_routes(ApiId=api)["Items"]}
            diff.expect(f"{logical_id}: WebSocket route {props['RouteKey']}", True, props["RouteKey"] in keys)

    print(f"deploy-local: {diff.checked} settings read back and compared with the template")
    if diff.found:
        print(f"deploy-local: {len(diff.found)} differences:", file=sys.stderr)
        for d in diff.found:
            print(f"  {d}", file=sys.stderr)
        sys.exit(1)
    counts = {}
    for r in stack.resources:
        counts[r["ResourceStatus"]] = counts.get(r["ResourceStatus"], 0) + 1
    print(f"deploy-local: {', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}; the functions, "
          f"event source mappings, schedules, subscriptions, filter and redrive policies, alarms, tables, usage "
          f"plans and routes are as "
          f"the template says")


def list_subscriptions(sns, topic):
    out = []
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic):
        out.extend(page["Subscriptions"])
    return out


def rest_routes(stack, api_id):
    """(path, method) -> authorizer name, integrated function name, API key required."""
    authorizers = {a["id"]: a["name"] for a in stack.apigw.get_authorizers(restApiId=api_id)["items"]}
    routes = {}
    for page in stack.apigw.get_paginator("get_resources").paginate(restApiId=api_id, embed=["methods"]):
        for resource in page["items"]:
            for method in resource.get("resourceMethods", {}):
                m = stack.apigw.get_method(restApiId=api_id, resourceId=resource["id"], httpMethod=method)
                uri = (m.get("methodIntegration") or {}).get("uri", "")
                function = re.search(r":function:([^/:]+)", uri)
                routes[(resource["path"], method)] = {
                    "authorizer": authorizers.get(m.get("authorizerId")),
                    "function": function.group(1) if function else uri,
                    "api_key_required": bool(m.get("apiKeyRequired")),
                }
    return routes


def physical_id(stack_name, logical_id):
    cfn = boto3.client("cloudformation")
    return cfn.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical_id)[
        "StackResourceDetail"]["PhysicalResourceId"]


def api_url(stack_name):
    """MiniStack serves a REST API stage at /restapis/<id>/<stage>/_user_request_ (on AWS, the
    ApiUrl output: https://<id>.execute-api.<region>.amazonaws.com/<stage>)."""
    cfn = boto3.client("cloudformation")
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    stage = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}.get("Stage", "dev")
    api = physical_id(stack_name, "MarketplaceApi")
    return f"{os.environ['AWS_ENDPOINT_URL'].rstrip('/')}/restapis/{api}/{stage}/_user_request_"


def wait_for_build(url, build_id):
    deadline = time.monotonic() + 60
    seen = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                seen = response.headers.get("x-build-id")
                status = response.status
        except urllib.error.HTTPError as e:
            seen, status = e.headers.get("x-build-id"), e.code
        except OSError as e:
            seen, status = None, str(e)
        if seen == build_id:
            print(f"deploy-local: GET {url} answered {status}, x-build-id: {seen}: the new code answers")
            return
        time.sleep(0.5)
    sys.exit(f"deploy-local: {url} still answers with x-build-id {seen!r}, not {build_id!r}, after 60 s")


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["binaries"]:
            print(" ".join(binaries()))
        case ["zip", bin_dir, out_dir]:
            zip_binaries(bin_dir, out_dir)
        case ["bucket", name]:
            create_bucket(name)
        case ["build-template", out, zips]:
            build_template(out, zips)
        case ["verify", stack_name]:
            verify(stack_name)
        case ["verify", stack_name, "--quiet"]:
            verify(stack_name, quiet=True)
        case ["physical-id", stack_name, logical_id]:
            print(physical_id(stack_name, logical_id))
        case ["api-url", stack_name]:
            print(api_url(stack_name))
        case ["wait-for-build", url, build_id]:
            wait_for_build(url, build_id)
        case _:
            sys.exit(__doc__)
