"""The README's model table is the one generated from the cards (train.readme_table), so it cannot drift."""
import json
import shutil

from studio.hub import checkpoints_dir
from train import readme_table


def test_readme_model_table_equals_the_one_generated_from_the_cards():
    text = readme_table.README.read_text()
    assert readme_table.current_block(text) == readme_table.block(), \
        "README.md's model table differs from the cards: run `python -m train.readme_table`"


def test_every_shipped_checkpoint_has_a_row_and_rows_read_their_own_card(tmp_path):
    """Each row quotes its own metrics.json: change a number in a copy of the cards and the row follows
    (the DRL row once borrowed CDRL's FD); a key the card lacks reads "not measured", never an old number."""
    names = {r.name for r in readme_table.ROWS}
    shipped = {p.name for p in checkpoints_dir().iterdir() if (p / "config.json").is_file()}
    assert shipped <= names, f"no README row for {sorted(shipped - names)}"
    for name in ("drl-fmnist", "cdrl-fmnist", "letit-emoji"):
        shutil.copytree(checkpoints_dir() / name, tmp_path / name, ignore=shutil.ignore_patterns("*.safetensors"))
    drl = json.loads((tmp_path / "drl-fmnist" / "metrics.json").read_text())
    drl["fd_uncond"] = 12.345
    (tmp_path / "drl-fmnist" / "metrics.json").write_text(json.dumps(drl))
    letit = json.loads((tmp_path / "letit-emoji" / "metrics.json").read_text())
    del letit["t2g_fd"]
    (tmp_path / "letit-emoji" / "metrics.json").write_text(json.dumps(letit))
    rows = {line.split("`")[1]: line for line in readme_table.table(tmp_path).splitlines()[2:]}
    assert set(rows) == {"drl-fmnist", "cdrl-fmnist", "letit-emoji"}
    assert "FD 12.35 unconditional" in rows["drl-fmnist"] and "12.35" not in rows["cdrl-fmnist"]
    assert "t2g_fd not measured" in rows["letit-emoji"]
    assert "FD of Twitter -> Google outputs" not in rows["letit-emoji"]  # an unmeasured bar has no verdict


def test_check_mode_fails_on_a_drifted_readme(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n\n{readme_table.block()}\n\nmore\n")
    assert readme_table.main(["--check", "--readme", str(readme)]) == 0
    readme.write_text(readme.read_text().replace("| `drl-fmnist` |", "| `drl-fmnist` | FD 20.81 |"))
    assert readme_table.main(["--check", "--readme", str(readme)]) == 1
    assert readme_table.main(["--readme", str(readme)]) == 0  # rewrite
    assert readme_table.main(["--check", "--readme", str(readme)]) == 0
    assert readme.read_text().startswith("intro\n\n") and readme.read_text().endswith("\n\nmore\n")
