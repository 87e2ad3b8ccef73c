"""The lock installs on Linux x86-64, macOS arm64 and Windows x86-64 (mmga_helpers.tools.pins).

The last test asks the package index for real, for macOS arm64 only: the three platforms together
(``make check-platforms``, the same code) took 85-150 s on a busy two-core machine, too long for every
``make test``. macOS is the platform the lock used not to install on, and the one whose TensorFlow
differs from the Linux build the rest of the suite runs on.
"""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement

from mmga_helpers.core.paths import from_root
from mmga_helpers.tools import pins
from mmga_helpers.tools.pins import PLATFORMS, PinError, lock_from_freeze, read_pins, unmet_dependencies

LINUX = PLATFORMS["linux-x86_64"].environment()
WINDOWS = PLATFORMS["windows-x86_64"].environment()
CPU = 'sys_platform != "darwin" and (platform_machine == "x86_64" or platform_machine == "AMD64")'
ONE = 'sys_platform == "darwin" or (platform_machine != "x86_64" and platform_machine != "AMD64")'


def test_read_pins_takes_markers_and_refuses_ranges() -> None:
    got = read_pins(f"# header\n\nnumpy==2.4.6\ntensorflow-cpu==2.21.0 ; {CPU}\n")
    assert [(r.name, str(r.specifier), str(r.marker or "")) for r in got] == [
        ("numpy", "==2.4.6", ""), ("tensorflow-cpu", "==2.21.0", CPU)
    ]
    for bad in ("numpy>=2", "numpy", "numpy[extra]==2.4.6", "numpy==2 ; nonsense"):
        with pytest.raises(PinError, match="line 1"):
            read_pins(bad)


def test_pins_for_each_platform() -> None:
    lock = read_pins(f"tensorflow-cpu==2.21.0 ; {CPU}\ntensorflow==2.21.0 ; {ONE}\n"
                     'colorama==0.4.6 ; sys_platform == "win32"\nnumpy==2.4.6\n')
    assert sorted(pins.pins_for(lock, LINUX)) == ["numpy", "tensorflow-cpu"]
    assert sorted(pins.pins_for(lock, WINDOWS)) == ["colorama", "numpy", "tensorflow-cpu"]
    assert sorted(pins.pins_for(lock, PLATFORMS["macos-arm64"].environment())) == ["numpy", "tensorflow"]
    with pytest.raises(PinError, match="pinned twice"):
        pins.pins_for(read_pins("numpy==2.4.6\nnumpy==2.4.5 ; os_name == 'posix'\n"), LINUX)


def test_lock_from_freeze_keeps_markers_and_other_platforms_pins() -> None:
    """`make lock` on Linux: the freeze's versions, each with its old marker; the macOS and Windows
    pins a Linux freeze cannot see kept, TensorFlow's macOS build moved with tensorflow-cpu."""
    old = read_pins(f"numpy==2.4.5\ntensorflow-cpu==2.21.0 ; {CPU}\ntensorflow==2.21.0 ; {ONE}\n"
                    'colorama==0.4.6 ; sys_platform == "win32"\ngone==1.0\n')
    freeze = ["numpy==2.4.6", "tensorflow_cpu==2.22.0", "Jinja2==3.1.6"]
    text = lock_from_freeze(freeze, old, LINUX)
    assert text.splitlines()[0].startswith("# Exact pins")
    assert text.splitlines()[1:] == [
        'colorama==0.4.6 ; sys_platform == "win32"',
        "Jinja2==3.1.6",
        "numpy==2.4.6",
        f"tensorflow==2.22.0 ; {ONE}",
        f"tensorflow-cpu==2.22.0 ; {CPU}",  # the old lock's spelling, not freeze's: stable diffs
    ]
    assert read_pins(text)  # what it writes, it reads


def test_unmet_dependencies_judged_for_the_target_platform() -> None:
    """pip on Linux would not ask for colorama when resolving for Windows: the check does."""
    report = {"install": [
        {"metadata": {"name": "tqdm", "version": "4.70.1", "requires_dist": [
            'colorama; platform_system == "Windows"', "numpy>=3; extra == 'np'"]}},
        {"metadata": {"name": "jupyter-events", "version": "0.12.1",
                      "requires_dist": ["jsonschema[format-nongpl]>=4.18"]}},
        {"metadata": {"name": "jsonschema", "version": "4.26.0",
                      "requires_dist": ["fqdn; extra == 'format-nongpl'"]}},
    ]}
    pinned = {n: Requirement(f"{n}=={v}") for n, v in (("tqdm", "4.70.1"), ("jupyter-events", "0.12.1"),
                                                       ("jsonschema", "4.26.0"))}
    assert unmet_dependencies(report, LINUX, pinned) == ["jsonschema needs fqdn there, not pinned"]
    assert unmet_dependencies(report, WINDOWS, pinned) == [
        "jsonschema needs fqdn there, not pinned", "tqdm needs colorama there, not pinned"
    ]
    pinned |= {"fqdn": Requirement("fqdn==1.6.0"), "colorama": Requirement("colorama==0.3")}
    assert unmet_dependencies(report, WINDOWS, pinned) == []
    report["install"][0]["metadata"]["requires_dist"][0] = 'colorama>=0.4; platform_system == "Windows"'
    assert unmet_dependencies(report, WINDOWS, pinned) == [
        'tqdm needs colorama>=0.4; platform_system == "Windows", the lock pins colorama==0.3'
    ]


def test_pip_asked_for_wheels_of_the_target() -> None:
    from pathlib import Path

    cmd = pins.pip_command(PLATFORMS["linux-x86_64"], Path("r.txt"), Path("rep.json"), Path("t"))
    assert {"--dry-run", "--only-binary=:all:", "--ignore-installed"} <= set(cmd)
    assert cmd[cmd.index("--python-version") + 1] == pins.PYTHON
    # pip 23 does not widen manylinux_2_28 to the older glibc tags wheels are published under
    assert {"--platform=manylinux_2_28_x86_64", "--platform=manylinux2014_x86_64"} <= set(cmd)


@pytest.mark.network
def test_the_lock_resolves_on_macos() -> None:
    (result,) = pins.check(["macos-arm64"], from_root("requirements.lock"))
    assert result.ok, result.summary()
    assert len(result.resolved) >= result.pins  # every pin for macOS, as wheels
    assert "tensorflow-cpu" not in result.resolved
    cpu = next(r for r in read_pins(from_root("requirements.lock").read_text()) if r.name == "tensorflow-cpu")
    assert result.resolved["tensorflow"] == pins.version_of(cpu)  # the same TensorFlow as on Linux
    assert "appnope" in result.resolved and "colorama" not in result.resolved
