"""What a UDF closure carries to the workers: one broadcast per bundle, plus name resolution.

Built on the driver from a Registry; pickled into the UDFs.  Each bundle's ONNX
bytes travel once per executor through ``SparkContext.broadcast``.
"""
import json
from dataclasses import dataclass, field

from .registry import Registry, resolve_key


@dataclass(frozen=True)
class Catalog:
    default: str            # model spec used when SQL omits the model argument ('' if none)
    latest: dict            # name -> "name:version"
    payloads: dict          # "name:version" -> Broadcast[(manifest_json, onnx_bytes)]
    refused: dict = field(default_factory=dict)  # "name[:version]" -> why it is not served

    def resolve(self, spec) -> str:
        return resolve_key(self.default if spec is None else spec, self.latest, self.payloads, self.refused)

    def manifest(self, key) -> dict:
        return json.loads(self.payloads[key].value[0])


def build(sc, registry: Registry, default: str = "", previous: "Catalog" = None) -> Catalog:
    """Broadcast every bundle in ``registry``, reusing ``previous`` broadcasts that are unchanged."""
    payloads = {}
    for key, bundle in registry.bundles.items():
        old = previous.payloads.get(key) if previous else None
        if old is not None and json.loads(old.value[0])["files"] == bundle.manifest["files"]:
            payloads[key] = old
        else:
            payloads[key] = sc.broadcast((json.dumps(bundle.manifest), bundle.model_bytes()))
    return Catalog(default=default or "", latest=registry.latest(), payloads=payloads,
                   refused=registry.refused_models())
