#!/usr/bin/env python3
"""Checks that the routes agree everywhere they are written down.

Every HttpApi route in template.yaml must have a function under functions/, an entry in the
`cargo lambda watch` router in Cargo.toml, and a sample event in events/; and the other way
round. A function run by a schedule has a sample scheduled event instead of a route.
Exits non-zero, listing each mismatch, when they drift apart.
"""
import json
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
    for event in resource["Properties"].get("Events", {}).values():
        if event["Type"] == "HttpApi":
            props = event["Properties"]
            template_routes.add((props["Method"].upper(), props["Path"], binary))
        elif event["Type"] in ("Schedule", "ScheduleV2"):
            scheduled_functions.add(binary)

router = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]["metadata"]["lambda"]["watch"]["router"]
router_routes = {
    (entry["method"].upper(), path, entry["function"])
    for path, entries in router.items()
    for entry in entries
}

function_dirs = {p.name for p in (root / "functions").iterdir() if (p / "Cargo.toml").exists()}
event_routes = {}
scheduled_events = set()
for path in (root / "events").glob("*.json"):
    event = json.loads(path.read_text())
    if event.get("detail-type") == "Scheduled Event":
        scheduled_events.add(path.stem)
        continue
    method, route = event["routeKey"].split(" ", 1)
    event_routes[path.stem] = (method, route, path.stem)

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
        problems.append(f"events/{name}.json has routeKey {route[0]} {route[1]}, not a route of {name}")

checked = len(template_routes) + len(function_dirs) + len(event_routes) + len(scheduled_events)
for problem in problems:
    print(f"route check: {problem}")
print(f"route check: {len(problems)} problem(s) in {checked} routes, functions and events")
sys.exit(1 if problems else 0)
