#!/usr/bin/env python3
"""Stands in for Grafana in the CI compose stack (compose/ci/docker-compose.ci.yml): checks
what Grafana would load, with the same mounts as the user stack's grafana service.

Usage: check-grafana.py [PROVISIONING_DIR]   (default /etc/grafana/provisioning)

- datasources/*.yml|yaml: apiVersion 1; every datasource has a name, a type and a unique
  name and uid; exactly one is the default; a prometheus datasource's URL answers
  GET /-/ready (it is the stack's Prometheus, on the same network).
- dashboards/*.yml|yaml: apiVersion 1; every provider of type `file` points at a directory
  that exists in this container (mounted as the user stack mounts it) and holds at least
  one dashboard.
- every dashboard (*.json under a provider's path): parses; has a title and a uid, unique
  across dashboards; no `__inputs` left from an export (Grafana's file provisioning does
  not resolve ${DS_...}); every `datasource` it references, at any depth (panels, targets,
  template variables, annotations), is a provisioned datasource by uid (with the same
  type, when given) or by name, one of Grafana's built-ins, or a template variable.

Prints what it checked; exits 1 with one line per problem.
"""
import glob
import json
import os
import sys
import time
import urllib.request

import yaml

BUILTIN_UIDS = {"-- Grafana --", "-- Mixed --", "-- Dashboard --", "grafana"}
BUILTIN_TYPES = {"grafana", "datasource"}

problems = []


def problem(msg):
    problems.append(msg)


def yaml_files(d):
    return sorted(glob.glob(os.path.join(d, "*.yml")) + glob.glob(os.path.join(d, "*.yaml")))


def load_yaml(path):
    try:
        with open(path) as f:
            return yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        problem(f"{path}: {e}")
        return {}


def ready(url, attempts=15):
    """GET <url>/-/ready until 200 (Prometheus may still be replaying its WAL)."""
    last = None
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/-/ready", timeout=3) as r:
                if r.status == 200:
                    return None
                last = f"HTTP {r.status}"
        except Exception as e:  # noqa: BLE001 - any failure is the answer
            last = str(e)
        time.sleep(1)
    return last


def check_datasources(root):
    by_uid, by_name = {}, {}
    files = yaml_files(os.path.join(root, "datasources"))
    if not files:
        problem(f"{root}/datasources: no provisioning file")
    defaults = []
    for path in files:
        doc = load_yaml(path)
        if doc.get("apiVersion") != 1:
            problem(f"{path}: apiVersion is {doc.get('apiVersion')!r}, not 1")
        for i, ds in enumerate(doc.get("datasources") or []):
            where = f"{path}: datasources[{i}]"
            name, uid, typ = ds.get("name"), ds.get("uid"), ds.get("type")
            if not name or not typ:
                problem(f"{where}: needs a name and a type")
                continue
            if name in by_name:
                problem(f"{where}: name {name!r} is provisioned twice")
            if uid and uid in by_uid:
                problem(f"{where}: uid {uid!r} is provisioned twice")
            by_name[name] = ds
            if uid:
                by_uid[uid] = ds
            if ds.get("isDefault"):
                defaults.append(name)
            if typ == "prometheus":
                url = ds.get("url")
                if not url:
                    problem(f"{where}: prometheus datasource without url")
                else:
                    err = ready(url)
                    if err:
                        problem(f"{where}: {url}/-/ready does not answer 200: {err}")
                    else:
                        print(f"datasource {name} (uid {uid}, {typ}): {url} answers")
    if by_name and len(defaults) != 1:
        problem(f"datasources: {len(defaults)} marked isDefault, want exactly 1: {defaults}")
    return by_uid, by_name


def check_providers(root):
    paths = []
    files = yaml_files(os.path.join(root, "dashboards"))
    if not files:
        problem(f"{root}/dashboards: no provisioning file")
    for path in files:
        doc = load_yaml(path)
        if doc.get("apiVersion") != 1:
            problem(f"{path}: apiVersion is {doc.get('apiVersion')!r}, not 1")
        for i, p in enumerate(doc.get("providers") or []):
            where = f"{path}: providers[{i}] ({p.get('name')})"
            if p.get("type", "file") != "file":
                continue
            d = (p.get("options") or {}).get("path")
            if not d:
                problem(f"{where}: no options.path")
            elif not os.path.isdir(d):
                problem(f"{where}: options.path {d} is not a directory in the container "
                        "(is it mounted?)")
            else:
                found = sorted(glob.glob(os.path.join(d, "**", "*.json"), recursive=True))
                if not found:
                    problem(f"{where}: no dashboard (*.json) under {d}")
                print(f"provider {p.get('name')} (folder {p.get('folder')!r}): {d}, "
                      f"{len(found)} dashboard(s)")
                paths.extend(found)
    return paths


def refs(node, where):
    """Every `datasource` value in a dashboard, with a path to it."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource":
                yield where + "/datasource", v
            yield from refs(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from refs(v, f"{where}[{i}]")


def is_variable(s, variables):
    if not isinstance(s, str) or not s.startswith("$"):
        return False
    name = s[1:].strip("{}").split(":")[0]
    return name in variables


def check_dashboards(paths, by_uid, by_name):
    uids = {}
    for path in paths:
        try:
            with open(path) as f:
                dash = json.load(f)
        except (OSError, ValueError) as e:
            problem(f"{path}: {e}")
            continue
        title, uid = dash.get("title"), dash.get("uid")
        if not title or not uid:
            problem(f"{path}: needs a title and a uid")
        elif uid in uids:
            problem(f"{path}: uid {uid!r} is also {uids[uid]}")
        else:
            uids[uid] = path
        if "__inputs" in dash:
            problem(f"{path}: has __inputs (an export for sharing): provisioning does not "
                    "resolve ${DS_...}; export without 'share externally'")
        variables = {v.get("name") for v in (dash.get("templating") or {}).get("list", [])}
        n = 0
        for where, ref in refs(dash, ""):
            n += 1
            if ref is None:
                continue  # the default datasource
            if isinstance(ref, str):
                if ref in by_name or ref in by_uid or ref in BUILTIN_UIDS \
                        or is_variable(ref, variables):
                    continue
                problem(f"{path}: {where}: datasource {ref!r} is not provisioned")
                continue
            if not isinstance(ref, dict):
                problem(f"{path}: {where}: datasource {ref!r} is neither a name nor an object")
                continue
            r_uid, r_type = ref.get("uid"), ref.get("type")
            if r_type in BUILTIN_TYPES or r_uid in BUILTIN_UIDS or is_variable(r_uid, variables):
                continue
            ds = by_uid.get(r_uid)
            if ds is None:
                problem(f"{path}: {where}: datasource uid {r_uid!r} is not provisioned "
                        f"(have {sorted(by_uid)})")
            elif r_type and r_type != ds.get("type"):
                problem(f"{path}: {where}: datasource uid {r_uid!r} is a {ds.get('type')}, "
                        f"the dashboard says {r_type}")
        print(f"dashboard {uid} ({title!r}, {len(dash.get('panels') or [])} top-level "
              f"panels): {n} datasource references checked")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "/etc/grafana/provisioning"
    by_uid, by_name = check_datasources(root)
    paths = check_providers(root)
    check_dashboards(paths, by_uid, by_name)
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    if problems:
        print(f"grafana provisioning: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("grafana provisioning: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
