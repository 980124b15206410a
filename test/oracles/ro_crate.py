"""Reads an RO-Crate folder with the `rocrate` package (ro-crate-py) and prints, as JSON, what a consumer finds
in it: the profiles, the main workflow and its steps, every action, every file's hash (and, for files the crate
carries, the hash of their bytes), and the PropertyValues a run's CreateAction returns. Any warning while
loading (e.g. a File the root does not list) is an error."""
import hashlib
import json
import sys
import warnings
from pathlib import Path

from rocrate.model.entity import Entity
from rocrate.rocrate import ROCrate

warnings.simplefilter("error")
folder = Path(sys.argv[1])
crate = ROCrate(folder)


def ids(value):
    items = value if isinstance(value, list) else [] if value is None else [value]
    return [v.id if isinstance(v, Entity) else v for v in items]


def types(entity):
    return entity.type if isinstance(entity.type, list) else [entity.type]


def action(a):
    instrument = a.get("instrument")
    return {
        "id": a.id,
        "name": a.get("name"),
        "instrument": instrument.id,
        "instrumentTypes": types(instrument),
        "object": ids(a.get("object")),
        "result": ids(a.get("result")),
        "startTime": a.get("startTime"),
        "endTime": a.get("endTime"),
        "actionStatus": a.get("actionStatus"),
    }


by_type = {}
for e in crate.get_entities():
    for t in types(e):
        by_type.setdefault(t, []).append(e.id)

files = {}
for f in crate.get_by_type("File"):
    on_disk = folder / f.id
    files[f.id] = {
        "sha256": f.get("sha256"),
        "contentSize": f.get("contentSize"),
        "carried": on_disk.is_file(),
        "bytesSha256": hashlib.sha256(on_disk.read_bytes()).hexdigest() if on_disk.is_file() else None,
    }

main = crate.mainEntity
runs = [a for a in crate.get_by_type("CreateAction") if a.get("instrument") is main]
values = {}
for run in runs:
    for v in run.get("result") or []:
        if isinstance(v, Entity) and "PropertyValue" in types(v):
            keys = ("value", "description", "minValue", "maxValue", "measurementTechnique")
            values[v.get("name")] = {k: v.get(k) for k in keys if v.get(k) is not None}

print(json.dumps({
    "conformsTo": ids(crate.root_dataset.get("conformsTo")),
    "mainEntity": {"id": main.id, "types": types(main), "steps": [
        {"id": s.id, "name": s.get("name"), "workExample": s.get("workExample").id}
        for s in main.get("step") or []
    ], "hasPart": ids(main.get("hasPart"))},
    "byType": by_type,
    "createActions": [action(a) for a in crate.get_by_type("CreateAction")],
    "controlActions": [
        {"instrument": a.get("instrument").id, "object": a.get("object").id}
        for a in crate.get_by_type("ControlAction")
    ],
    "organizeActions": [
        {"instrument": a.get("instrument").id, "object": ids(a.get("object")), "result": a.get("result").id}
        for a in crate.get_by_type("OrganizeAction")
    ],
    "runActions": [a.id for a in runs],
    "files": files,
    "runResults": values,
}, indent=1))
