"""End to end: the images, run. The tracking server image (deploy/tracking/Dockerfile) on the native
PostgreSQL, with basic-auth, a pipeline logging to it, artifacts on its volume or in moto's S3; then
the model that pipeline registered, built the way docs/serving.md tells a user (`mlflow models
build-docker`, then deploy/serving/Dockerfile) and started with DolphinScheduler's `docker run` line
verbatim and with deploy/serving/compose.yaml, answering as `mlflow models serve` does.

The engine is podman behind `docker`, on the stand-in base image, both from `make docker-setup`
(docs/serving.md says what differs from Docker and the official image). Each image is built once."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
import requests
from conftest import BIN_DIR, PROJECT_DIR, free_port, stop_process, subprocess_env, wait_until_healthy
from containers import docker, docker_env, inspect, podman_shim, remove, run_health_checks, wait_for
from fixtures import mixed_frame
from serving import served_model

pytestmark = pytest.mark.e2e
TRACKING = PROJECT_DIR / "deploy" / "tracking"
SUFFIX = uuid.uuid4().hex[:8]
ADMIN, PASSWORD = "admin", f"pw-{uuid.uuid4().hex}"
CREDENTIALS = {"MLFLOW_TRACKING_USERNAME": ADMIN, "MLFLOW_TRACKING_PASSWORD": PASSWORD}
SERVER_SECRETS = {
    "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
    "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
    "POSTGRES_PASSWORD": f"pg{uuid.uuid4().hex}",
}
BUCKET, PREFIX = "image-artifacts", "mlflow"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "tracking-image", "AWS_SECRET_ACCESS_KEY": uuid.uuid4().hex}
HOST_LOOPBACK = "10.0.2.2"  # the host's 127.0.0.1, from a container on slirp4netns:allow_host_loopback
# DolphinScheduler's MLflow task starts a model image with this line, health command included.
HEALTH = "curl --fail http://127.0.0.1:8080/ping || exit 1"
DS_RUN_LINE = (
    f'docker run -d --name={{name}} -p={{port}}:8080 --health-cmd "{HEALTH}" '
    "--health-interval 5s --health-retries 20 {image}"
)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[dict[str, str]]:
    """The environment the tests run `docker` in; afterwards, nothing they made is left."""
    env = docker_env(podman_shim(tmp_path_factory.mktemp("shim")))
    yield env
    listings = [["ps", "--all", "--format", "{{.Names}}"], ["images", "--format", "{{.Repository}}:{{.Tag}}"]]
    listings += [[kind, "ls", "--format", "{{.Name}}"] for kind in ("volume", "network")]
    left = [line for listing in listings for line in docker(env, *listing).stdout.split() if SUFFIX in line]
    assert not left, f"left behind: {left}"


@pytest.fixture(scope="module")
def postgres(tmp_path_factory) -> Iterator[int]:
    """PostgreSQL from the machine's binaries (`start-native.sh postgres`) on a free loopback port."""
    state, port = tmp_path_factory.mktemp("postgres"), free_port()
    env = subprocess_env("", POSTGRES_PASSWORD=SERVER_SECRETS["POSTGRES_PASSWORD"])
    script = ["bash", str(TRACKING / "start-native.sh")]
    started = subprocess.run([*script, "postgres", str(state), str(port)], env=env, capture_output=True, text=True)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield port
    finally:
        # `delete`, not `stop`: as root, PostgreSQL's files live outside `state` and would outlive it.
        deleted = subprocess.run([*script, "delete", str(state)], env=env, timeout=120)
    # After a start that worked only, so a failed start keeps its own message.
    assert deleted.returncode == 0, "PostgreSQL's data was not deleted"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """moto's S3 server on a free loopback port, holding an empty bucket."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    command = [str(BIN_DIR / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=subprocess_env(""))
    try:
        wait_until_healthy(endpoint, process, 60, path="/moto-api/")
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **s3_keys()).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        stop_process(process)
        log.close()


def s3_keys() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_KEYS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_KEYS["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.fixture(scope="module")
def tracking_image(env, tmp_path_factory) -> Iterator[str]:
    """deploy/tracking/Dockerfile built from the repository root, as compose.yaml builds it."""
    image = f"tabular-pipeline/tracking:test-{SUFFIX}"
    log = tmp_path_factory.mktemp("tracking-build") / "build.log"
    docker(env, "build", "-f", str(TRACKING / "Dockerfile"), "-t", image, str(PROJECT_DIR), log=log)
    try:
        yield image
    finally:
        remove(env, "image", image)


def start_tracking_server(env, image: str, pg_port: int, name: str, *options: str) -> str:
    """Runs the tracking image against the native PostgreSQL; returns its URL once it answers.
    Secrets pass as `-e NAME`, so their values are on no command line."""
    port = free_port()
    settings = {"POSTGRES_HOST": HOST_LOOPBACK, "POSTGRES_PORT": str(pg_port)}
    settings |= {"MLFLOW_ALLOWED_HOSTS": f"127.0.0.1:{port}", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    run = ["run", "-d", "--name", name, "--network", "slirp4netns:allow_host_loopback=true"]
    run += ["-p", f"127.0.0.1:{port}:5000", *[f"-e{key}" for key in SERVER_SECRETS]]
    run += [f"-e{key}={value}" for key, value in settings.items()]
    docker({**env, **SERVER_SECRETS}, *run, *options, image)
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/health", 240, name, env)
    return url


@pytest.fixture(scope="module")
def team_server(env, tracking_image, postgres) -> Iterator[tuple[str, Path]]:
    """The tracking image with its artifacts on a named volume; yields its URL and the volume's folder."""
    name, volume = f"tracking-{SUFFIX}", f"mlartifacts-{SUFFIX}"
    docker(env, "volume", "create", volume)
    try:
        url = start_tracking_server(env, tracking_image, postgres, name, "-v", f"{volume}:/mlartifacts")
        yield url, Path(inspect(env, volume)["Mountpoint"])
    finally:
        remove(env, "container", name)
        remove(env, "volume", volume)


@pytest.fixture(scope="module")
def registered_model(team_server, tmp_path_factory) -> str:
    """`main` on a table with a category and missing values, logged to the tracking image and
    registered (Production) under a fresh name."""
    folder = tmp_path_factory.mktemp("table")
    mixed_frame(200).to_csv(folder / "mixed.csv", index=False)
    name = f"docker-{SUFFIX}"
    command = [str(BIN_DIR / "mlflow"), "run", str(PROJECT_DIR), "--env-manager", "local"]
    command += ["-P", f"data_path={folder / 'mixed.csv'}", "-P", f"model_name={name}", f"--experiment-name={name}"]
    env = subprocess_env(team_server[0], **CREDENTIALS)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=PROJECT_DIR)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return name


@pytest.fixture(scope="module")
def model_images(env, team_server, registered_model, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """DolphinScheduler's image name for `models:/<name>/Production`, built as docs/serving.md says:
    `mlflow models build-docker --env-manager local`, then deploy/serving/Dockerfile under the same
    name. Yields that name and the ID of the image build-docker made."""
    image = f"mlflow/{registered_model}:production"
    logs = tmp_path_factory.mktemp("model-build")
    build_env = {**env, "MLFLOW_TRACKING_URI": team_server[0], **CREDENTIALS}
    command = ["models", "build-docker", "-m", f"models:/{registered_model}/Production", "-n", image]
    with (logs / "build-docker.log").open("w") as log:
        done = subprocess.run(
            [str(BIN_DIR / "mlflow"), *command, "--env-manager", "local"],
            env=build_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=900,
        )
    assert done.returncode == 0, (logs / "build-docker.log").read_text()[-3000:]
    plain = inspect(env, image)["Id"]
    try:
        layer = ["build", "-t", image, "--build-arg", f"MODEL_IMAGE={image}", str(PROJECT_DIR / "deploy" / "serving")]
        docker(env, *layer, log=logs / "layer.log")
        yield image, plain
    finally:
        remove(env, "image", image, plain)


def raw_rows() -> pd.DataFrame:
    """Rows as a client sends them: one with a missing number, one with a category never seen in training."""
    rows = mixed_frame(200, seed=1).drop(columns=["label"]).head(3)
    rows.loc[0, "x1"] = None
    rows.loc[1, "colour"] = "purple"
    return rows


REQUESTS = {
    "split": {"dataframe_split": json.loads(raw_rows().to_json(orient="split", index=False))},
    "records": {"dataframe_records": json.loads(raw_rows().to_json(orient="records"))},
    "missing column": {"dataframe_records": [{"x1": 1.0}]},
}


def answers(url: str) -> dict[str, tuple[int, object]]:
    replies = {kind: requests.post(f"{url}/invocations", json=body, timeout=60) for kind, body in REQUESTS.items()}
    return {kind: (reply.status_code, reply.json()) for kind, reply in replies.items()}


@pytest.fixture(scope="module")
def served_answers(team_server, registered_model) -> dict[str, tuple[int, object]]:
    """What `mlflow models serve` answers for the same model and requests."""
    env = subprocess_env(team_server[0], **CREDENTIALS)
    with served_model(f"models:/{registered_model}/Production", team_server[0], env=env) as url:
        return answers(url)


# Prints what a container holds: the versions installed of the packages named, and whether the
# model's packages and curl are there (run in the model images, also the model's own pins).
REPORT = """
import json, os, shutil, sys
from importlib.metadata import version
names = sys.argv[1:]
pins = {}
if os.path.exists("/opt/ml/model/requirements.txt"):
    lines = open("/opt/ml/model/requirements.txt").read().split()
    pins = dict(line.split("==") for line in lines if "==" in line)
report = {"installed": {n: version(n) for n in [*names, *pins]}, "pins": pins, "curl": shutil.which("curl")}
try:
    import lightgbm
    report["lightgbm"] = "imports"
except OSError as error:
    report["lightgbm"] = str(error)
print(json.dumps(report))
"""


def report(env, image: str, *names: str) -> dict:
    return json.loads(docker(env, "run", "--rm", "--entrypoint", "python", image, "-c", REPORT, *names).stdout)


def project_pins() -> dict[str, str]:
    """`name==version` lines of requirements.txt and the tracking server's requirements file."""
    from packaging.requirements import Requirement

    pins = {}
    for file in (PROJECT_DIR / "requirements.txt", TRACKING / "requirements.txt"):
        for line in file.read_text().splitlines():
            if line.strip() and not line.startswith(("#", "-")):
                requirement = Requirement(line)
                exact = [spec.version for spec in requirement.specifier if spec.operator == "=="]
                if exact:
                    pins[requirement.name.lower()] = exact[0]
    return pins


def test_tracking_image_refuses_a_wrong_password_and_holds_the_pins(env, team_server, tracking_image):
    api = f"{team_server[0]}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(api, timeout=30).status_code == 401
    assert requests.get(api, auth=(ADMIN, "wrong-password-123"), timeout=30).status_code == 401
    assert requests.get(api, auth=(ADMIN, PASSWORD), timeout=30).status_code == 200
    server_packages = ["mlflow", "psycopg", "flask-wtf", "boto3", "uvloop", "httptools"]
    installed = report(env, tracking_image, *server_packages)["installed"]
    assert installed == {name: project_pins()[name] for name in server_packages}


def test_a_pipeline_logs_to_the_tracking_image_with_artifacts_on_its_volume(
    team_server, registered_model, tmp_path, monkeypatch
):
    """What the server hands out for every run of the pipeline is what its volume holds."""
    from mlflow import MlflowClient

    url, volume = team_server
    for key, value in CREDENTIALS.items():  # MLflow's client reads them from the environment
        monkeypatch.setenv(key, value)
    client = MlflowClient(url)
    runs = client.search_runs([client.get_experiment_by_name(registered_model).experiment_id])
    assert {run.data.tags["mlflow.project.entryPoint"] for run in runs} >= {"main", "train_basic", "register"}
    for run in runs:
        assert run.info.status == "FINISHED"
        folder = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / run.info.run_id)))
        served = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
        kept = volume / urlparse(run.info.artifact_uri).path.strip("/")
        assert served == {path.relative_to(kept).as_posix() for path in kept.rglob("*") if path.is_file()}
    version = client.get_model_version_by_alias(registered_model, "production")
    assert version.current_stage == "Production"
    model = client.get_model_version_download_uri(registered_model, version.version)
    assert (volume / urlparse(model).path.strip("/") / "MLmodel").is_file()


def test_tracking_image_keeps_artifacts_in_s3(env, tracking_image, postgres, s3_endpoint, monkeypatch, tmp_path):
    """The same image with MLFLOW_ARTIFACTS_DESTINATION=s3://...: what a client logs lands in the
    bucket (the server alone holds the S3 keys), and the client reads it back through the server
    (docs/team-server.md: with presigned downloads turned off, as a client that cannot reach the
    endpoint must)."""
    import boto3
    from mlflow import MlflowClient

    name = f"tracking-s3-{SUFFIX}"
    s3 = [f"-eMLFLOW_ARTIFACTS_DESTINATION=s3://{BUCKET}/{PREFIX}", "-eAWS_DEFAULT_REGION=us-east-1"]
    s3 += [f"-eMLFLOW_S3_ENDPOINT_URL={s3_endpoint.replace('127.0.0.1', HOST_LOOPBACK)}", *[f"-e{k}" for k in S3_KEYS]]
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    # MLflow 3.17 clients fetch from an S3-backed server through presigned URLs, straight from the
    # endpoint the server names; this one (the server's view of the host) is out of the client's reach.
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    try:
        client = MlflowClient(start_tracking_server({**env, **S3_KEYS}, tracking_image, postgres, name, *s3))
        run = client.create_run(client.create_experiment(f"s3-{SUFFIX}"))
        client.log_text(run.info.run_id, "kept in the bucket", "notes/note.txt")
        fetched = Path(client.download_artifacts(run.info.run_id, "notes/note.txt", str(tmp_path))).read_text()
    finally:
        remove(env, "container", name)
    bucket = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **s3_keys())
    prefix = f"{PREFIX}/{urlparse(run.info.artifact_uri).path.strip('/')}/"
    keys = [item["Key"] for item in bucket.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    assert keys == [f"{prefix}notes/note.txt"]
    assert bucket.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read().decode() == fetched == "kept in the bucket"


def test_the_build_docker_image_lacks_what_deploy_serving_adds(env, model_images):
    """build-docker's image holds the model's pins (the project's) but neither libgomp1, without
    which LightGBM cannot load, nor the curl DolphinScheduler's health command runs; the image
    deploy/serving/Dockerfile makes of it has both."""
    image, plain = model_images
    before, after = report(env, plain), report(env, image)
    pins = project_pins()
    assert before["installed"] == before["pins"], "the image installs what the model pins"
    shared = before["pins"].keys() & pins.keys()
    assert shared >= {"mlflow", "lightgbm", "pandas", "scikit-learn"}
    assert {name: before["pins"][name] for name in shared} == {name: pins[name] for name in shared}
    assert "libgomp.so.1" in before["lightgbm"] and before["curl"] is None
    assert after["lightgbm"] == "imports" and after["curl"] == "/usr/bin/curl"


def test_dolphinschedulers_docker_run_line_verbatim(env, model_images, served_answers):
    """DolphinScheduler's line as its MLflow task writes it: the port mapping takes requests, the
    container's own health check reports it healthy, and it answers raw rows (a missing value, an
    unseen category, a missing column) exactly as `mlflow models serve` does."""
    image, _ = model_images
    name, port = f"ds-{SUFFIX}", free_port()
    line = DS_RUN_LINE.format(name=name, port=port, image=image)
    started = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stderr
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/ping", 300, name, env)
        health, container, got = run_health_checks(env, name), inspect(env, name), answers(url)
    finally:
        remove(env, "container", name)
    assert container["HostConfig"]["NetworkMode"] == "bridge"
    assert container["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"] == str(port)
    assert container["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", HEALTH]
    assert health["Status"] == "healthy" and health["Log"][-1]["ExitCode"] == 0
    assert got["split"][0] == 200 and len(got["split"][1]["predictions"]) == len(raw_rows())
    assert got["missing column"][0] == 400
    assert got == served_answers


def test_serving_compose_runs_the_same_image(env, model_images, served_answers):
    """deploy/serving/compose.yaml under podman-compose: the port, the limits and the health check
    it sets, and the same answers."""
    image, _ = model_images
    project, port = f"serving{SUFFIX}", free_port()
    settings = {"MODEL_IMAGE": image, "PORT": str(port), "CPU_LIMIT": "1.5", "MEMORY_LIMIT": "1536M"}
    compose = ["podman-compose", "-f", str(PROJECT_DIR / "deploy" / "serving" / "compose.yaml"), "-p", project]
    up = subprocess.run([*compose, "up", "-d"], env={**env, **settings}, capture_output=True, text=True, timeout=300)
    name = f"{project}_model_1"
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/ping", 300, name, env)
        health, container, got = run_health_checks(env, name), inspect(env, name), answers(url)
    finally:
        subprocess.run([*compose, "down"], env={**env, **settings}, capture_output=True, timeout=300)
        remove(env, "container", name)
        remove(env, "network", f"{project}_default")
    assert container["HostConfig"]["NanoCpus"] == 1.5e9 and container["HostConfig"]["Memory"] == 1536 * 2**20
    assert container["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert health["Status"] == "healthy" and health["Log"][-1]["ExitCode"] == 0
    assert got == served_answers
