#!/usr/bin/env python3
"""Checks that the routes agree everywhere they are written down, and that the REST API SAM
makes of template.yaml is the one the functions expect.

Every Api route in template.yaml (CORS preflight OPTIONS routes included) must have a
function under functions/, an entry in the `cargo lambda watch` router in Cargo.toml, and
each function a sample REST API event in events/; and the other way round. A function run by
a schedule has a sample scheduled event instead of a route.

Then the template is translated as `sam deploy` would (offline, with the SAM translator the
SAM CLI ships) and the result is checked: a function served through Lambda response
streaming (its main calls `serve_streaming`) is invoked as a stream on every one of its
routes and no other function is (either mismatch answers 502 in AWS); every path has a
preflight route; the API has exactly one stage; every function gets ALLOWED_ORIGINS and
AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH.
Exits non-zero, listing each mismatch, when they drift apart.
"""
import json
import logging
import os
import pathlib
import sys
import tomllib

from cfnlint.decode import decode

root = pathlib.Path(__file__).resolve().parent.parent
problems = []

template, matches = decode(str(root / "template.yaml"))
if matches:
    sys.exit(f"template.yaml does not parse: {matches}")

template_routes = set()  # (method, path, function)
template_functions = set()
scheduled_functions = set()
for name, resource in template["Resources"].items():
    if resource["Type"] != "AWS::Serverless::Function":
        continue
    binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
    if not binary:
        problems.append(f"template.yaml: {name} does not name its Binary")
        continue
    template_functions.add(binary)
    for event_name, event in resource["Properties"].get("Events", {}).items():
        if event["Type"] == "Api":
            props = event["Properties"]
            template_routes.add((props["Method"].upper(), props["Path"], binary))
        elif event["Type"] in ("Schedule", "ScheduleV2"):
            scheduled_functions.add(binary)
        else:
            problems.append(f"template.yaml: {name}.{event_name} is a {event['Type']} event, not an Api route")

router = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]["metadata"]["lambda"]["watch"]["router"]
router_routes = {
    (entry["method"].upper(), path, entry["function"])
    for path, entries in router.items()
    for entry in entries
}

function_dirs = {p.name for p in (root / "functions").iterdir() if (p / "Cargo.toml").exists()}
streaming_functions = {
    name for name in function_dirs
    if "serve_streaming" in (root / "functions" / name / "src" / "main.rs").read_text()
}
event_routes = {}
scheduled_events = set()
for path in (root / "events").glob("*.json"):
    event = json.loads(path.read_text())
    if event.get("detail-type") == "Scheduled Event":
        scheduled_events.add(path.stem)
        continue
    if "httpMethod" not in event or event.get("requestContext", {}).get("resourcePath") is None:
        problems.append(f"events/{path.name} is not a REST API (payload 1.0) event")
        continue
    event_routes[path.stem] = (event["httpMethod"], event["resource"], path.stem)

for route in sorted(template_routes - router_routes):
    problems.append(f"template route {route} is missing from the watch router in Cargo.toml")
for route in sorted(router_routes - template_routes):
    problems.append(f"watch router route {route} is not in template.yaml")
for function in sorted(function_dirs - template_functions):
    problems.append(f"functions/{function} has no function in template.yaml")
for function in sorted(template_functions - function_dirs):
    problems.append(f"template.yaml builds {function}, but functions/{function} does not exist")
for function in sorted(template_functions - event_routes.keys() - scheduled_events):
    problems.append(f"{function} has no sample event events/{function}.json")
for name in sorted(scheduled_events ^ scheduled_functions):
    problems.append(f"events/{name}.json and the template disagree on whether {name} runs on a schedule")
for name, route in sorted(event_routes.items()):
    if route not in template_routes:
        problems.append(f"events/{name}.json is {route[0]} {route[1]}, not a route of {name}")
for path in sorted({path for _, path, _ in template_routes}):
    if ("OPTIONS", path) not in {(method, p) for method, p, _ in template_routes}:
        problems.append(f"template.yaml: {path} has no OPTIONS route: browsers' preflights would fail")


def translated():
    """The template as CloudFormation receives it after SAM's transform."""
    from samtranslator.translator.transform import transform

    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # its feature-toggle chatter

    class NoManagedPolicies:
        def load(self):
            return {}

    packaged = json.loads(json.dumps(template))
    for resource in packaged["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/key"  # as `sam package` writes it
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    parameters = {"AWS::Region": os.environ["AWS_DEFAULT_REGION"], "AWS::AccountId": "123456789012"}
    return transform(packaged, parameters, NoManagedPolicies())


resources = translated()["Resources"]
stages = [name for name, r in resources.items() if r["Type"] == "AWS::ApiGateway::Stage"]
if len(stages) != 1:
    problems.append(f"the REST API has {len(stages)} stages ({stages}), not one base URL")
functions_by_logical_id = {
    name: r["Metadata"]["BuildProperties"]["Binary"]
    for name, r in template["Resources"].items()
    if r["Type"] == "AWS::Serverless::Function"
}
integrations = 0
for api in (r for r in resources.values() if r["Type"] == "AWS::ApiGateway::RestApi"):
    for path, methods in api["Properties"]["Body"]["paths"].items():
        for method, operation in methods.items():
            integration = operation["x-amazon-apigateway-integration"]
            uri = json.dumps(integration["uri"])
            function = next(f for logical, f in functions_by_logical_id.items() if f"${{{logical}.Arn}}" in uri)
            streamed = integration.get("responseTransferMode") == "STREAM" and "response-streaming-invocations" in uri
            integrations += 1
            if streamed != (function in streaming_functions):
                mode = "streamed" if streamed else "buffered"
                problems.append(f"{method.upper()} {path} invokes {function} {mode}, but {function} "
                                f"{'serves' if function in streaming_functions else 'does not serve'} a stream")
for name, resource in resources.items():
    if resource["Type"] != "AWS::Lambda::Function":
        continue
    variables = resource["Properties"].get("Environment", {}).get("Variables", {})
    for variable in ("ALLOWED_ORIGINS", "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH"):
        if variable not in variables:
            problems.append(f"{name} has no {variable}")

checked = len(template_routes) + len(function_dirs) + len(event_routes) + len(scheduled_events) + integrations
for problem in problems:
    print(f"route check: {problem}")
print(f"route check: {len(problems)} problem(s) in {checked} routes, functions, events and integrations")
sys.exit(1 if problems else 0)
