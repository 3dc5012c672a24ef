from frugal.tasks.asr.longform import Segment
from frugal.tasks.asr.subtitles import parse_subtitles, timestamp, to_srt, to_vtt

SEGMENTS = [
    Segment(0.0, 2.5, " Hello there."),
    Segment(2.5, 61.04, "A minute, more or less."),
    Segment(3599.999, 3725.5, "Past the hour: 1:02:05."),
]


def test_timestamps():
    assert timestamp(3725.5) == "01:02:05,500"
    assert timestamp(0.0004, ".") == "00:00:00.000"
    assert timestamp(-1) == "00:00:00,000"


def test_srt_and_vtt_parse_back():
    for text in (to_srt(SEGMENTS), to_vtt(SEGMENTS)):
        back = parse_subtitles(text)
        assert [(g.start, g.end, g.text) for g in back] == [
            (round(g.start, 3), round(g.end, 3), g.text.strip()) for g in SEGMENTS
        ]
    assert to_vtt(SEGMENTS).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.")
    assert to_srt(SEGMENTS).startswith("1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n")
    assert to_srt([]) == "" and parse_subtitles(to_vtt([])) == []
