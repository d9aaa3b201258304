"""The GPU box (ml) works on first boot: the server driver with nvidia-smi, at most one
reboot when the module cannot load yet, a GPU check whose line lands in the bootstrap log and
whose gauge Prometheus alerts on, dcgm-exporter on :9400 open to the monitoring group only,
and an instance type the subnet's zone offers. The bootstrap's own functions and the files
it writes run here with stand-ins for the machine (fake nvidia-smi, a Python without a GPU);
nothing touches AWS (moto)."""

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.terraform

GPU_CHECK = "/usr/local/sbin/pneumonia-gpu-check"
RESUME_UNIT = "/etc/systemd/system/pneumonia-boot-resume.service"
CHECK_UNIT = "/etc/systemd/system/pneumonia-gpu-check.service"
DCGM_DROPIN = "/etc/systemd/system/nvidia-dcgm-exporter.service.d/pneumonia.conf"
NVIDIA_KEY = "EB693B3035CD5710E231E123A4B469963BF863CC"


def function(script, name):
    """The text of one shell function of a rendered bootstrap."""
    m = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", script, re.M | re.S)
    assert m, f"{name} is not in the bootstrap"
    return m[0]


def constant(script, name):
    """The value of one `readonly NAME="value"` of a rendered bootstrap."""
    m = re.search(rf'^readonly {name}=(?:"([^"\n]*)"|(\S+))', script, re.M)
    assert m, f"{name} is not set in the bootstrap"
    return m[1] if m[1] is not None else m[2]


def run_bash(text, tmp_path, env=None):
    path = tmp_path / "harness.sh"
    path.write_text(text)
    return subprocess.run(
        ["bash", str(path)], capture_output=True, text=True, timeout=60, env=env or os.environ
    )


# ---------------------------------------------------------------------------------------
# The driver, nvidia-smi and the one reboot
# ---------------------------------------------------------------------------------------

# Stand-ins for what the driver step calls: everything is recorded in $T/calls; the module
# "loads" (nvidia-smi starts working) only where $T/modprobe_ok exists.
DRIVER_STANDINS = """\
set -euo pipefail
T={tmp}
GPU_STATE=$T/state
NVIDIA_DRIVER={driver}
calls=$T/calls
log() {{ echo "log $*" >>"$calls"; }}
retry() {{ shift; "$@"; }}
apt_install() {{ echo "apt_install $*" >>"$calls"; }}
write_file() {{ echo "write_file $1" >>"$calls"; cat >/dev/null; }}
systemctl() {{ echo "systemctl $*" >>"$calls"; }}
shutdown() {{ echo "shutdown $1 $2" >>"$calls"; }}
install() {{ if [[ $1 == -d ]]; then command install "$@"; else echo "install $*" >>"$calls"; fi; }}
nvidia-smi() {{ [[ -f $T/loaded ]]; }}
modprobe() {{ echo "modprobe $*" >>"$calls"; [[ -f $T/modprobe_ok ]] && touch "$T/loaded"; }}
ubuntu-drivers() {{ echo "ubuntu-drivers $*" >>"$calls"; }}
"""


@pytest.fixture
def driver_step(user_data, tmp_path):
    """Runs the rendered install_nvidia_driver in a sandbox; returns the calls it made."""
    script = user_data["ml"]
    functions = function(script, "install_nvidia_driver") + function(script, "install_boot_resume")
    harness = (
        DRIVER_STANDINS.format(tmp=tmp_path, driver=constant(script, "NVIDIA_DRIVER"))
        + functions
        + 'install_nvidia_driver\necho "bootstrap goes on" >>"$calls"\n'
    )

    def run(*, loaded=False, loads_after_install=True):
        (tmp_path / "calls").write_text("")
        for flag, on in (("loaded", loaded), ("modprobe_ok", loads_after_install)):
            (tmp_path / flag).unlink(missing_ok=True)
            if on:
                (tmp_path / flag).touch()
        proc = run_bash(harness, tmp_path)
        assert proc.returncode == 0, proc.stderr
        return (tmp_path / "calls").read_text().splitlines()

    return run


def test_driver_step_installs_the_server_driver_and_nvidia_smi(driver_step, user_data):
    """ubuntu-drivers --gpgpu brings no nvidia-smi: the branch's nvidia-utils comes with it."""
    assert constant(user_data["ml"], "NVIDIA_DRIVER") == "nvidia:580-server"
    calls = driver_step()
    assert "ubuntu-drivers install --gpgpu nvidia:580-server" in calls
    assert "apt_install nvidia-utils-580-server" in calls
    assert "modprobe nvidia" in calls
    assert not [c for c in calls if c.startswith(("shutdown", "systemctl reboot"))]
    assert calls[-1] == "bootstrap goes on"


def test_driver_step_leaves_a_working_driver_alone(driver_step):
    """An AMI with a working driver (e.g. a Deep Learning AMI) installs nothing."""
    assert driver_step(loaded=True) == ["bootstrap goes on"]


def test_driver_step_reboots_once_and_resumes(driver_step, tmp_path):
    """A module that cannot load yet: one reboot, with the resume unit enabled first; a
    second failure (after that reboot) goes on without a GPU and never reboots again."""
    calls = driver_step(loads_after_install=False)
    # in a minute: cloud-init records the script as done first, or would run it again
    assert calls.count("shutdown -r +1") == 1
    assert f"write_file {RESUME_UNIT}" in calls
    enable = calls.index("systemctl enable --quiet pneumonia-boot-resume.service")
    assert enable < calls.index("shutdown -r +1")
    assert "bootstrap goes on" not in calls, "nothing runs after the reboot is asked for"
    assert (tmp_path / "state" / "rebooted").exists()

    again = driver_step(loads_after_install=False)
    assert not [c for c in again if c.startswith(("shutdown", "systemctl reboot"))], again
    assert any("still does not load after a reboot" in c for c in again)
    assert again[-1] == "bootstrap goes on"


def test_resume_unit_runs_the_bootstrap_once_after_the_reboot(files, user_data):
    """The post-reboot part: a oneshot that runs the same bootstrap again, on the reboot's
    marker only, and marks itself done before it starts."""
    mode, owner, unit = files["ml"][RESUME_UNIT]
    state = constant(user_data["ml"], "GPU_STATE")
    assert (mode, owner) == ("0644", "root:root")
    lines = unit.splitlines()
    assert f"ConditionPathExists={state}/rebooted" in lines
    assert f"ConditionPathExists=!{state}/resumed" in lines
    assert f"ExecStartPre=/usr/bin/touch {state}/resumed" in lines
    assert "ExecStart=/usr/local/sbin/pneumonia-host-resume boot" in lines
    assert "Type=oneshot" in lines and "WantedBy=multi-user.target" in lines
    # the copy it runs is the installed bootstrap (main.sh installs $0 as pneumonia-host)
    resume = function(user_data["ml"], "install_boot_resume")
    assert (
        "install -m 0700 /usr/local/sbin/pneumonia-host /usr/local/sbin/pneumonia-host-resume"
        in (resume)
    )


# ---------------------------------------------------------------------------------------
# The GPU check: the script the bootstrap writes, run with stand-ins
# ---------------------------------------------------------------------------------------

NOT_LOADED = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running."
)


@pytest.fixture
def gpu_check(files, tmp_path):
    """Runs the GPU check the bootstrap writes, with a fake nvidia-smi (or none) on PATH
    and the given Python; returns (exit code, stdout, stderr, textfile or None)."""
    script = tmp_path / "pneumonia-gpu-check"
    script.write_text(files["ml"][GPU_CHECK][2])
    script.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    textfile = tmp_path / "textfile" / "gpu.prom"
    textfile.parent.mkdir()

    def run(smi=None, python=None):
        if smi is not None:
            (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\n{smi}\n")
            (bin_dir / "nvidia-smi").chmod(0o755)
        env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "GPU_CHECK_PYTHON": str(python or tmp_path / "no-venv" / "python"),
            "GPU_CHECK_TEXTFILE": str(textfile),
        }
        proc = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=240, env=env
        )
        text = textfile.read_text() if textfile.exists() else None
        return proc.returncode, proc.stdout.strip(), proc.stderr.strip(), text

    return run


def fake_python(tmp_path, body):
    path = tmp_path / "fake-python"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def gauges(text):
    return dict(re.findall(r"^(pneumonia_gpu_\w+(?:\{[^}]*\})?) (\d+)$", text, re.M))


@pytest.fixture(autouse=True)
def no_real_nvidia_smi(request):
    if "gpu_check" in request.fixturenames and Path("/usr/bin/nvidia-smi").exists():
        pytest.skip("this machine has a real nvidia-smi in /usr/bin: the fakes would not be alone")


def test_gpu_check_reports_a_working_gpu(gpu_check, tmp_path):
    """Both sides see the GPU: one line with the name, the driver and TF's count; gauge 1;
    the textfile is valid exposition format (promtool)."""
    python = fake_python(tmp_path, 'echo "tf-gpus=1"')
    code, out, err, text = gpu_check(smi='echo "NVIDIA L4, 535.183.01"', python=python)
    assert (code, out, err) == (0, "GPU ok: NVIDIA L4, driver 535.183.01, TF sees 1 GPU", "")
    assert gauges(text) == {
        "pneumonia_gpu_ready": "1",
        'pneumonia_gpu_check_ok{side="driver"}': "1",
        'pneumonia_gpu_check_ok{side="tensorflow"}': "1",
    }
    if shutil.which("promtool"):
        checked = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    "smi,expected",
    [
        (None, "driver: nvidia-smi is not installed"),
        (
            f'echo "{NOT_LOADED}"; exit 9',
            f"driver: nvidia-smi fails, the driver is not loaded: {NOT_LOADED}",
        ),
        ("exit 0", "driver: nvidia-smi lists no GPU"),
    ],
    ids=["no-nvidia-smi", "driver-not-loaded", "no-gpu-listed"],
)
def test_gpu_check_names_the_driver_side(gpu_check, tmp_path, smi, expected):
    """No nvidia-smi, a driver that is not loaded, no GPU: exit 1, the driver side named."""
    python = fake_python(tmp_path, 'echo "tf-gpus=0"')
    code, out, err, text = gpu_check(smi=smi, python=python)
    assert code == 1 and out == ""
    assert err.startswith("GPU check failed: ") and expected in err, err
    assert gauges(text)["pneumonia_gpu_ready"] == "0"
    assert gauges(text)['pneumonia_gpu_check_ok{side="driver"}'] == "0"


def test_gpu_check_names_tensorflow_without_a_release(gpu_check):
    """Before the first release there is no virtualenv: the TensorFlow side says so."""
    code, _, err, text = gpu_check(smi='echo "NVIDIA L4, 535.183.01"')
    assert code == 2
    assert "TensorFlow: no release virtualenv at" in err and "driver:" not in err, err
    assert gauges(text)['pneumonia_gpu_check_ok{side="driver"}'] == "1"


def test_gpu_check_names_tensorflow_that_does_not_import(gpu_check):
    """A Python without TensorFlow (the system's): exit 2, the import error quoted."""
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if (
        system_python is None
        or subprocess.run(
            [system_python, "-c", "import tensorflow"], capture_output=True
        ).returncode
        == 0
    ):
        pytest.skip("needs a system python3 without TensorFlow")
    code, _, err, _ = gpu_check(smi='echo "NVIDIA L4, 535.183.01"', python=system_python)
    assert code == 2
    assert "TensorFlow: does not start: ModuleNotFoundError: No module named 'tensorflow'" in err


def test_gpu_check_with_real_tensorflow_on_this_cpu(gpu_check):
    """The same command the box runs, with this project's TensorFlow (a CPU build, no GPU
    here): the driver side passes (fake nvidia-smi), TensorFlow sees 0 GPU, exit 2."""
    if subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True).returncode:
        pytest.skip("TensorFlow is not installed in this virtualenv")
    code, out, err, text = gpu_check(smi='echo "NVIDIA L4, 535.183.01"', python=sys.executable)
    assert (code, out) == (2, "")
    assert err.endswith(
        "TensorFlow: sees 0 GPU (a CPU-only build, or CUDA wheels this driver does not support)"
    ), err
    assert gauges(text) == {
        "pneumonia_gpu_ready": "0",
        'pneumonia_gpu_check_ok{side="driver"}': "1",
        'pneumonia_gpu_check_ok{side="tensorflow"}': "0",
    }


def test_gpu_check_runs_at_boot_and_after_each_deploy_into_the_log(files, user_data):
    """The unit runs the script as the trainer's user, its line appended to the bootstrap
    log (shipped to CloudWatch), its gauge beside the training gauges node_exporter serves;
    the bootstrap runs it after each deploy's configure."""
    script = user_data["ml"]
    _, _, unit = files["ml"][CHECK_UNIT]
    lines = unit.splitlines()
    assert f"ExecStart={GPU_CHECK}" in lines and "Type=oneshot" in lines
    assert "StandardOutput=append:/var/log/pneumonia-bootstrap.log" in lines
    assert "StandardError=append:/var/log/pneumonia-bootstrap.log" in lines
    textfile_dir = constant(script, "TEXTFILE_DIR")
    assert f"GPU_CHECK_TEXTFILE={textfile_dir}/gpu.prom" in unit
    assert "WantedBy=multi-user.target" in lines
    assert "install_gpu_check" in function(script, "setup")
    assert "run_gpu_check" in function(script, "configure")
    assert "systemctl restart pneumonia-gpu-check.service" in function(script, "run_gpu_check")


# ---------------------------------------------------------------------------------------
# dcgm-exporter
# ---------------------------------------------------------------------------------------

GPG_BATCH = """%no-protection
Key-Type: EDDSA
Key-Curve: ed25519
Name-Real: not NVIDIA
Name-Email: test@example.invalid
Expire-Date: 0
%commit
"""


@pytest.fixture
def signing_key(tmp_path):
    """An armored public key made here, and its fingerprint."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    batch = tmp_path / "batch"
    batch.write_text(GPG_BATCH)
    subprocess.run(
        ["gpg", "--batch", "--gen-key", str(batch)], env=env, check=True, capture_output=True
    )
    armored = subprocess.run(
        ["gpg", "--armor", "--export"], env=env, check=True, capture_output=True, text=True
    ).stdout
    listing = subprocess.run(
        ["gpg", "--with-colons", "--list-keys"], env=env, check=True, capture_output=True, text=True
    ).stdout
    fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))
    key = tmp_path / "3bf863cc.pub"
    key.write_text(armored)
    return key, fpr


@pytest.fixture
def dcgm_step(user_data, tmp_path):
    """Runs the rendered install_dcgm_exporter with apt and systemd stood in; files it
    writes land under $T/root. Returns (exit code, calls, root)."""
    script = user_data["ml"]
    root = tmp_path / "root"

    def run(key, trusted):
        harness = (
            textwrap.dedent(
                f"""\
            set -euo pipefail
            T={tmp_path}
            calls=$T/calls
            : >"$calls"
            NVIDIA_REPO_KEY={trusted}
            DCGM_VERSION='{constant(script, "DCGM_VERSION")}'
            DCGM_EXPORTER_VERSION='{constant(script, "DCGM_EXPORTER_VERSION")}'
            DCGM_EXPORTER_PORT='{constant(script, "DCGM_EXPORTER_PORT")}'
            log() {{ echo "log $*" >>"$calls"; }}
            retry() {{ shift; "$@"; }}
            apt_install() {{ echo "apt_install $*" >>"$calls"; }}
            apt-get() {{ echo "apt-get $*" >>"$calls"; }}
            apt-mark() {{ echo "apt-mark $*" >>"$calls"; }}
            enable_services() {{ echo "enable_services $*" >>"$calls"; }}
            lsb_release() {{ echo 22.04; }}
            curl() {{ echo "curl ${{*: -1}}" >>"$calls"; cp {key} "$3"; }}
            write_file() {{ mkdir -p "$(dirname "$T/root$1")"; cat >"$T/root$1"; }}
            """
            )
            + function(script, "install_dcgm_exporter")
            + "install_dcgm_exporter\n"
        )
        proc = run_bash(harness, tmp_path)
        return proc.returncode, (tmp_path / "calls").read_text().splitlines(), root

    return run


def test_dcgm_repository_key_is_checked_by_fingerprint(dcgm_step, signing_key, user_data):
    """A key that is not NVIDIA's (by fingerprint) is refused: nothing is installed."""
    assert constant(user_data["ml"], "NVIDIA_REPO_KEY") == NVIDIA_KEY
    key, fpr = signing_key
    code, calls, root = dcgm_step(key, NVIDIA_KEY)
    assert code == 1
    assert any(f"has fingerprint {fpr}, not {NVIDIA_KEY}" in c for c in calls), calls
    assert not [c for c in calls if c.startswith("apt-get")]
    assert not (root / "usr/share/keyrings/nvidia-cuda.gpg").exists()


def test_dcgm_exporter_installs_the_pinned_pair_and_listens_on_9400(
    dcgm_step, signing_key, moto_stack, files
):
    """With the trusted key: the repository for this release, only DCGM and the exporter
    taken from it, exactly the versions terraform pins, held, the unit on :9400."""
    tf, _ = moto_stack
    pinned = tf.console("var.dcgm_versions")
    key, fpr = signing_key
    code, calls, root = dcgm_step(key, fpr)
    assert code == 0, calls
    assert (
        "curl https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/3bf863cc.pub"
        in calls
    )
    sources = (root / "etc/apt/sources.list.d/nvidia-cuda.list").read_text()
    assert sources == (
        "deb [signed-by=/usr/share/keyrings/nvidia-cuda.gpg] "
        "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/ /\n"
    )
    keyring = subprocess.run(
        ["gpg", "--show-keys", "--with-colons", str(root / "usr/share/keyrings/nvidia-cuda.gpg")],
        capture_output=True,
        text=True,
    ).stdout
    assert f":{fpr}:" in keyring, "the keyring apt uses holds the checked key"
    prefs = (root / "etc/apt/preferences.d/nvidia-cuda").read_text().split("\n\n")
    assert prefs[0].startswith(
        "Package: datacenter-gpu-manager-4-* datacenter-gpu-manager-exporter\n"
    )
    assert prefs[1] == "Package: *\nPin: origin developer.download.nvidia.com\nPin-Priority: -1\n"
    (install,) = [c for c in calls if c.startswith("apt-get") and " install " in c]
    assert install.endswith(
        f"datacenter-gpu-manager-4-core={pinned['dcgm']} "
        f"datacenter-gpu-manager-exporter={pinned['exporter']}"
    )
    assert "apt-mark hold datacenter-gpu-manager-4-core datacenter-gpu-manager-exporter" in calls
    assert calls[-1] == "enable_services nvidia-dcgm-exporter"
    _, _, dropin = files["ml"][DCGM_DROPIN]
    exec_lines = re.findall(r"^ExecStart=(.*)$", dropin, re.M)
    assert exec_lines[0] == "", "the drop-in replaces the package's command"
    assert exec_lines[1].startswith("/usr/bin/dcgm-exporter --address :9400 ")


def test_dcgm_exporter_needs_no_container_runtime(user_data):
    script = user_data["ml"]
    assert "install_dcgm_exporter" in function(script, "setup")
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"\b(docker|containerd|nvidia-container-toolkit|podman)\b", code)


def test_dcgm_port_open_to_the_monitoring_group_only(security_groups):
    """9400 is open on the ml group, from the monitoring group, and on no other group."""
    groups = security_groups
    opened = {
        name: [p for p in g["IpPermissions"] if p.get("FromPort", 0) <= 9400 <= p.get("ToPort", -1)]
        for name, g in groups.items()
    }
    assert {name for name, rules in opened.items() if rules} == {"pneumonia-ml"}
    (rule,) = opened["pneumonia-ml"]
    assert (rule["FromPort"], rule["ToPort"], rule["IpProtocol"]) == (9400, 9400, "tcp")
    assert not rule.get("IpRanges") and not rule.get("Ipv6Ranges")
    assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [
        groups["pneumonia-monitoring"]["GroupId"]
    ]


# ---------------------------------------------------------------------------------------
# Instance type and zone (terraform plan against moto's DescribeInstanceTypeOfferings)
# ---------------------------------------------------------------------------------------


def test_default_ml_type_is_a_current_gpu_generation(boto, outputs):
    """With the defaults, the ml box is a g5.xlarge (an A10G; moto's us-east-1a offers it)."""
    (reservation,) = boto("ec2").describe_instances(InstanceIds=[outputs["instance_ids"]["ml"]])[
        "Reservations"
    ]
    assert reservation["Instances"][0]["InstanceType"] == "g5.xlarge"


def plan_ml_type(tf, ml_type):
    return tf.run(
        "plan",
        "-refresh=false",
        "-lock=false",
        "-no-color",
        "-target=data.aws_ec2_instance_type_offerings.ml",
        f'-var=instance_types={{ml="{ml_type}"}}',
        check=False,
    )


def test_plan_accepts_an_ml_type_the_zone_offers(moto_stack):
    tf, _ = moto_stack
    proc = plan_ml_type(tf, "g6.xlarge")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_plan_refuses_an_ml_type_the_zone_does_not_offer(moto_stack):
    """moto's us-east-1 offers no p3.2xlarge: the plan fails naming the type, the zone and
    what to do."""
    tf, _ = moto_stack
    proc = plan_ml_type(tf, "p3.2xlarge")
    assert proc.returncode == 1
    err = " ".join(proc.stderr.split())
    assert "The ml instance type p3.2xlarge is not offered in us-east-1a" in err, err
    assert "Set instance_types.ml to a type that zone offers" in err
