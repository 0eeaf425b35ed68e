"""The course table: every topic has each of its parts, and the README and the app come from it."""

import re
from pathlib import Path

from lcviz.app import PAGES
from lcviz.course import ROOT, TOPICS, Topic, course_map_markdown, missing_parts


def test_every_topic_has_all_of_its_parts():
    assert {t: missing_parts(t) for t in TOPICS if missing_parts(t)} == {}


def test_a_topic_missing_a_part_is_caught(tmp_path):
    topic = Topic(99, "example", "Example", "nothing")
    for path in list(topic.parts().values())[:-1]:  # every part but the tests
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    assert missing_parts(topic, tmp_path) == ["tests"]


def test_numbers_and_slugs_are_unique_and_in_order():
    numbers = [t.number for t in TOPICS]
    assert numbers == sorted(set(numbers)) and numbers[0] == 1
    assert all(re.fullmatch(r"[a-z]+", t.slug) for t in TOPICS)


def test_the_app_pages_and_the_readme_course_map_come_from_the_table():
    assert list(PAGES) == [t.slug for t in TOPICS]
    assert course_map_markdown() in (ROOT / "README.md").read_text()


def test_the_product_speaks_only_of_itself():
    words = re.compile(r"(?i)\bseed (lecture|table|example)s?\b|design\.md|\.\./shared|\bissue \d+"
                       r"|\(target\s+(?:[<>≤≥]|==)|\bthe lecture\b")
    files = [p for pattern in ("lcviz/**/*.py", "tests/*.py", "notebooks/*.ipynb", "app.py",
                               "README.md", "Makefile") for p in ROOT.glob(pattern)]
    found = {str(p.relative_to(ROOT)): m.group(0) for p in files
             if p != Path(__file__) and (m := words.search(p.read_text()))}
    assert found == {}
