import warnings

import av
import numpy as np
import pytest
import soundfile as sf

from frugal.data import AudioError, load_audio, resample


def tone(sr: int, seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int = 16000) -> float:
    spec = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spec.argmax()])


@pytest.mark.parametrize("fmt,ext", [("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg")])
@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000])
def test_soundfile_formats_resample_to_16k(tmp_path, fmt, ext, sr):
    path = tmp_path / f"a.{ext}"
    sf.write(path, tone(sr), sr, format=fmt)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) <= 2
    assert abs(peak_hz(audio) - 440) < 2


def test_stereo_is_downmixed(tmp_path):
    left, right = tone(16000, freq=440), tone(16000, freq=1000)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 16000)
    audio = load_audio(tmp_path / "s.wav")
    np.testing.assert_allclose(audio, (left + right) / 2, atol=1e-4)


@pytest.mark.parametrize("codec,ext", [("libmp3lame", "mp3"), ("aac", "m4a")])
def test_pyav_formats(tmp_path, codec, ext):
    path = tmp_path / f"a.{ext}"
    x = tone(44100, 2.0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=44100, layout="mono")
        frame = av.AudioFrame.from_ndarray(x[None, :], format="flt", layout="mono")
        frame.sample_rate = 44100
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    audio = load_audio(path)
    assert abs(len(audio) / 16000 - 2.0) < 0.1
    assert abs(peak_hz(audio) - 440) < 3


def test_resample_is_polyphase_and_band_limited():
    x = tone(48000, 1.0, freq=12000)  # above 8 kHz Nyquist of 16 kHz: must be filtered out
    y = resample(x, 48000, 16000)
    assert len(y) == 16000 and np.abs(y[200:-200]).max() < 0.01  # edges: onset transient


@pytest.mark.parametrize(
    "content,match",
    [(b"", "empty file"), (b"this is not audio at all" * 10, "not a readable audio file")],
)
def test_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=match) as info:
        load_audio(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_directory_zero_samples_and_nan(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "missing.flac")
    with pytest.raises(AudioError, match="is a directory"):
        load_audio(tmp_path)
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="no audio samples"):
        load_audio(tmp_path / "zero.wav")
    x = tone(16000)
    x[10] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav")


def test_silent_audio_warns_but_loads(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        audio = load_audio(tmp_path / "silent.wav")
    assert len(audio) == 16000 and any("silent" in str(w.message) for w in caught)
