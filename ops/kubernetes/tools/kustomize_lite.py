"""The subset of kustomize that ops/kubernetes uses, so that validate.sh can render the base
and the overlays where no kustomize binary exists (Debian, PyPI and npm ship none).

Supported kustomization fields: `resources` (files and directories), `namespace`, `images`
(newName, newTag, digest), `replicas`, and `patches` given inline (`patch:`) or as a file
(`path:`): a JSON 6902 list applied to every object matching `target` (group, version,
kind, name, namespace), or a strategic-merge object (maps merged, lists of maps merged by
`name`, `$patch: delete` removing the object). Any other field is an error, so that a
kustomization never silently renders differently here than with kustomize. validate.sh
also compares this rendering with `kubectl kustomize` wherever kubectl is installed.
"""

import copy
import os
import sys

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "patches"}
# Kinds without a namespace, among those that kustomize knows.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass"}
REPLICATED = {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"}


class KustomizeError(Exception):
    pass


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def render(directory):
    """The objects of the kustomization in `directory`, in order."""
    kfile = os.path.join(directory, "kustomization.yaml")
    if not os.path.exists(kfile):
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    (k,) = load_docs(kfile)
    unknown = set(k) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{kfile}: fields not supported by kustomize_lite: {sorted(unknown)}")
    objects = []
    for res in k.get("resources", []):
        p = os.path.normpath(os.path.join(directory, res))
        objects.extend(render(p) if os.path.isdir(p) else load_docs(p))
    for patch in k.get("patches", []):
        objects = apply_patch(objects, patch, directory, kfile)
    if "namespace" in k:
        for o in objects:
            if o["kind"] not in CLUSTER_SCOPED:
                o.setdefault("metadata", {})["namespace"] = k["namespace"]
    for r in k.get("replicas", []):
        hits = [o for o in objects if o["kind"] in REPLICATED and o["metadata"]["name"] == r["name"]]
        if not hits:
            raise KustomizeError(f"{kfile}: replicas: no workload named {r['name']}")
        for o in hits:
            o.setdefault("spec", {})["replicas"] = r["count"]
    for img in k.get("images", []):
        for o in objects:
            for c in containers(o):
                set_image(c, img)
    names = [key(o) for o in objects]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise KustomizeError(f"{kfile}: objects defined twice: {sorted(dupes)}")
    return objects


def key(o):
    return (o.get("apiVersion"), o.get("kind"), o.get("metadata", {}).get("namespace"),
            o.get("metadata", {}).get("name"))


def containers(node):
    """Every container (and init container) of every pod template under `node`."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("containers", "initContainers") and isinstance(v, list):
                yield from (c for c in v if isinstance(c, dict))
            else:
                yield from containers(v)
    elif isinstance(node, list):
        for v in node:
            yield from containers(v)


def split_image(image):
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image, tag = image.rsplit(":", 1)
    return image, tag, digest


def set_image(container, img):
    name, tag, digest = split_image(container.get("image", ""))
    if name != img["name"]:
        return
    name = img.get("newName", name)
    if "digest" in img:
        container["image"] = f"{name}@{img['digest']}"
        return
    tag = img.get("newTag", tag)
    container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest and "newTag" not in img else "")


def matches(o, target):
    api = o.get("apiVersion", "")
    group, _, version = api.rpartition("/")
    meta = o.get("metadata", {})
    checks = {"group": group, "version": version, "kind": o.get("kind"),
              "name": meta.get("name"), "namespace": meta.get("namespace")}
    for field, value in target.items():
        if field not in checks:
            raise KustomizeError(f"patch target field not supported by kustomize_lite: {field}")
        if checks[field] != value:
            return False
    return True


def apply_patch(objects, patch, directory, kfile):
    unknown = set(patch) - {"patch", "path", "target"}
    if unknown:
        raise KustomizeError(f"{kfile}: patch fields not supported: {sorted(unknown)}")
    if "path" in patch:
        with open(os.path.join(directory, patch["path"])) as f:
            text = f.read()
    else:
        text = patch["patch"]
    body = yaml.safe_load(text)
    target = patch.get("target")
    if isinstance(body, list):
        if not target:
            raise KustomizeError(f"{kfile}: a JSON 6902 patch needs a target")
        hits = [o for o in objects if matches(o, target)]
        if not hits:
            raise KustomizeError(f"{kfile}: patch target {target} matches nothing")
        for o in hits:
            for op in body:
                json6902(o, op)
        return objects
    if not isinstance(body, dict):
        raise KustomizeError(f"{kfile}: a patch must be a list (JSON 6902) or an object")
    if target:
        hits = [o for o in objects if matches(o, target)]
    else:
        bmeta = body.get("metadata", {})
        hits = [o for o in objects if o.get("kind") == body.get("kind")
                and o.get("metadata", {}).get("name") == bmeta.get("name")]
    if not hits:
        raise KustomizeError(f"{kfile}: strategic-merge patch matches nothing")
    out = []
    for o in objects:
        if any(o is h for h in hits):
            if body.get("$patch") == "delete":
                continue
            patched = copy.deepcopy(body)
            if target:
                patched.pop("metadata", None)
                patched.pop("kind", None)
                patched.pop("apiVersion", None)
            o = smp(o, patched)
        out.append(o)
    return out


def smp(base, patch):
    """Strategic merge of `patch` into `base` (maps merged, lists of named maps by name)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = smp(out[k], v)
            else:
                out[k] = v
        return out
    if (isinstance(base, list) and isinstance(patch, list) and base and patch
            and all(isinstance(x, dict) and "name" in x for x in base + patch)):
        out = list(base)
        for item in patch:
            idx = next((i for i, x in enumerate(out) if x["name"] == item["name"]), None)
            if item.get("$patch") == "delete":
                if idx is not None:
                    out.pop(idx)
            elif idx is None:
                out.append(item)
            else:
                out[idx] = smp(out[idx], item)
        return out
    return patch


def pointer(path):
    if not path.startswith("/"):
        raise KustomizeError(f"JSON pointer must start with /: {path}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json6902(obj, op):
    parts = pointer(op["path"])
    parent = obj
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    last = parts[-1]
    kind = op["op"]
    if isinstance(parent, list):
        idx = len(parent) if last == "-" else int(last)
        if kind == "add":
            parent.insert(idx, op["value"])
        elif kind == "replace":
            parent[idx] = op["value"]
        elif kind == "remove":
            parent.pop(idx)
        else:
            raise KustomizeError(f"JSON 6902 op not supported: {kind}")
        return
    if kind in ("replace", "remove") and last not in parent:
        raise KustomizeError(f"JSON 6902 {kind}: {op['path']} does not exist")
    if kind in ("add", "replace"):
        parent[last] = op["value"]
    elif kind == "remove":
        del parent[last]
    else:
        raise KustomizeError(f"JSON 6902 op not supported: {kind}")


if __name__ == "__main__":
    try:
        yaml.safe_dump_all(render(sys.argv[1]), sys.stdout, sort_keys=False)
    except KustomizeError as e:
        sys.exit(f"kustomize_lite: {e}")
