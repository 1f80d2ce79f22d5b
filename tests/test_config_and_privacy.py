import pandas as pd
import pytest
from conftest import SCHEMA, shipped_config

from echo2ecg.config import ConfigError, check_cohort_references, check_config
from echo2ecg.data.pseudonym import KEY_ENV, pseudonymise, resolve_key
from echo2ecg.data.shard_plan import file_states, plan_ecg_shards, plan_echo_shards


def test_shipped_config_is_valid():
    check_config(shipped_config(), SCHEMA)


def test_unknown_key_is_named_with_what_is_allowed():
    config = shipped_config()
    config["echo"]["strid"] = 2
    with pytest.raises(
        ConfigError, match=r"config key echo\.strid: unknown key \(allowed here: .*stride"
    ):
        check_config(config, SCHEMA)


def test_wrong_value_is_named():
    config = shipped_config()
    config["ecg"]["asls_p"] = 1.5
    with pytest.raises(ConfigError, match=r"config key ecg\.asls_p: 1\.5 is greater than"):
        check_config(config, SCHEMA)


def test_echo_views_need_a_shard_count():
    config = shipped_config()
    del config["cohorts"]["internal"]["echo_shards"]
    with pytest.raises(ConfigError, match="echo_shards"):
        check_config(config, SCHEMA)


def test_keys_naming_cohorts_must_name_real_ones():
    config = shipped_config()
    check_cohort_references(config)
    config["evaluation"]["shd_cohort"] = "echonext"
    config["pairing"]["train_cohort"] = "external"  # has no echo views
    with pytest.raises(ConfigError) as error:
        check_cohort_references(config)
    assert "evaluation.shd_cohort: 'echonext' is not a cohort" in str(error.value)
    assert "pairing.train_cohort: 'external' is not a cohort with echo_views" in str(error.value)


def test_pseudonyms_are_keyed_and_stable(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    key = resolve_key("k1" * 16)
    assert pseudonymise("MRN123", key) == pseudonymise("MRN123", key)
    assert pseudonymise("MRN123", key) != pseudonymise("MRN123", resolve_key("k2" * 16))
    assert len(pseudonymise("MRN123", key)) == 16 and "123" not in pseudonymise("MRN123", key)
    monkeypatch.setenv(KEY_ENV, "from-env" * 4)
    assert resolve_key("k1" * 16) == b"from-env" * 4
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ValueError, match=KEY_ENV):
        resolve_key(None)


def views_table(tmp_path):
    (tmp_path / "a.dcm").write_bytes(b"x")
    return pd.DataFrame(
        {
            "path": [
                str(tmp_path / "a.dcm"),
                str(tmp_path / "missing.dcm"),
                str(tmp_path / "c.dcm"),
            ],
            "listed_path": ["a.dcm", "missing.dcm", "c.dcm"],
            "patient_id": ["MRN0001", "MRN0001", "MRN0002"],
            "study_id": ["ACC1", "ACC1", "ACC2"],
            "view_id": ["1.2.840.1", "1.2.840.2", "1.2.840.3"],
            "manifest_row": [0, 1, 2],
        }
    )


def test_echo_plan_keeps_studies_together_and_carries_no_raw_ids(tmp_path):
    plan = plan_echo_shards(views_table(tmp_path), 3, b"key")
    assert list(plan) == ["0000", "0001", "0002"]
    items = [item for shard in plan.values() for item in shard]
    assert sorted(i["fields"]["manifest_row"] for i in items) == [0, 1, 2]
    shard_of_row = {i["fields"]["manifest_row"]: s for s, shard in plan.items() for i in shard}
    assert shard_of_row[0] == shard_of_row[1]  # same study, same shard
    text = repr([{k: v for k, v in i.items() if k != "path"} for i in items])
    for raw in ("MRN0001", "ACC1", "1.2.840", "a.dcm"):
        assert raw not in text
    states = dict(zip((i["path"] for i in items), file_states(items)))
    assert states[str(tmp_path / "missing.dcm")] == "missing"
    assert states[str(tmp_path / "a.dcm")].startswith("1-")  # one byte, then its mtime


def test_unhashed_plan_shows_listed_paths(tmp_path):
    plan = plan_echo_shards(views_table(tmp_path), 1, b"key", hash_paths=False)
    assert [i["source"] for i in plan["0000"]] == ["a.dcm", "missing.dcm", "c.dcm"]


def test_ecg_plan_passes_format_and_rate():
    ecgs = pd.DataFrame(
        {
            "path": ["/x/a.npy", "/x/b.hea"],
            "listed_path": ["a.npy", "b.hea"],
            "patient_id": ["P1", "P2"],
            "ecg_id": ["E1", "E2"],
            "format": ["numpy", "wfdb"],
            "fs": [250.0, float("nan")],
            "manifest_row": [0, 1],
        }
    )
    items = sorted(
        (i for s in plan_ecg_shards(ecgs, 2, b"k").values() for i in s),
        key=lambda i: i["fields"]["manifest_row"],
    )
    assert items[0]["options"] == {"fmt": "numpy", "fs": 250.0}
    assert items[1]["options"] == {"fmt": "wfdb"}
