import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from frugal.data import builtin_speech, librispeech, load_dataset, manifest


def test_builtin_set_shape(builtin):
    assert len(builtin) >= 150
    durations = [u.meta["duration_s"] for u in builtin]
    assert min(durations) >= 3.0 and max(durations) <= 20.0
    assert sum(d > 12 for d in durations) >= 10  # long utterances are included
    voices = {u.meta["voice"].split(":")[0] for u in builtin}
    assert voices == {"espeak-ng", "flite", "festival"}
    assert len({u.meta["voice"] for u in builtin}) >= 10
    root = Path(builtin[0].audio_path).parent
    assert sum(p.stat().st_size for p in root.iterdir()) <= 10 * 2**20
    audio = builtin[0].load()
    assert abs(len(audio) / 16000 - durations[0]) < 0.05


def test_builtin_is_load_dataset_default():
    assert len(load_dataset("builtin")) == len(builtin_speech())


def _wav(path: Path, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), np.float32), 16000)
    return path


def test_librispeech_layout(tmp_path):
    chapter = tmp_path / "84" / "121123"
    _wav(chapter / "84-121123-0000.flac")
    _wav(chapter / "84-121123-0001.wav")
    (chapter / "84-121123.trans.txt").write_text(
        "84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS THAN FIVE MINUTES\n"
    )
    ds = load_dataset(tmp_path)
    assert [u.id for u in ds] == ["84-121123-0000", "84-121123-0001"]
    assert ds[1].text == "BUT IN LESS THAN FIVE MINUTES"
    assert ds[1].audio_path.suffix == ".wav" and len(ds[1].load()) == 16000


def test_jsonl_and_csv_manifests(tmp_path):
    _wav(tmp_path / "a" / "x.wav")
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"audio": "a/x.wav", "text": "hi", "spk": 3}) + "\n"
    )
    ds = manifest(tmp_path / "m.jsonl")
    assert ds[0].id == "x" and ds[0].text == "hi" and ds[0].meta == {"spk": 3}
    (tmp_path / "m.csv").write_text("audio,text\na/x.wav,hello there\n")
    assert load_dataset(tmp_path / "m.csv")[0].text == "hello there"


def test_take_and_sample(builtin):
    assert len(builtin.take(5)) == 5 and builtin.take(5)[0] == builtin[0]
    a, b = builtin.take(10, seed=1), builtin.take(10, seed=1)
    assert [u.id for u in a] == [u.id for u in b]


def test_bad_data_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="data not found"):
        load_dataset(tmp_path / "nothing")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="line 1 is not JSON"):
        load_dataset(tmp_path / "bad.jsonl")
    (tmp_path / "noaudio.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(ValueError, match="no 'audio' field"):
        load_dataset(tmp_path / "noaudio.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no \*\.trans\.txt"):
        librispeech(tmp_path / "empty")


def test_builtin_cache_decodes_once_and_shares_read_only_samples():
    cached = builtin_speech(cache=True)[3]
    first = cached.load()
    assert cached.load() is first and not first.flags.writeable  # shared: never written
    plain = builtin_speech()[3].load()
    assert plain is not first and plain.flags.writeable and np.array_equal(plain, first)
