"""Reading recipes: YAML (safe loader, duplicate keys rejected), ``--set`` overrides, clear errors, run names."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import reprlib
import typing
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from prunelab.config import schema as recipe_schema
from prunelab.config.schema import RECORDED, Recipe, fixed_settings, unread_settings
from prunelab.models import MODELS, NO_DEFAULT, model_options
from prunelab.models.registry import close_name


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names each bad field and what is allowed."""


#: The sections of a recipe (data, model, find, prune, eval).
RECIPE_SECTIONS = tuple(name for name, value in Recipe() if isinstance(value, BaseModel))
SECTIONS_NAMED = ", ".join(RECIPE_SECTIONS)


def builtin_recipes() -> dict[str, str]:
    """Built-in recipe names mapped to their one-line description."""
    found = {}
    for entry in sorted(resources.files("prunelab.recipes").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            data = yaml.safe_load(entry.read_text()) or {}
            found[entry.name.removesuffix(".yaml")] = str(data.get("description", "")).strip().split("\n")[0]
    return found


def recipe_text(source: str | Path) -> tuple[str, str]:
    """The YAML text of a recipe file or built-in recipe name, and where it came from."""
    path = Path(source)
    if path.is_file():
        return _read_utf8(path, str(path)), str(path)
    builtin = resources.files("prunelab.recipes") / f"{source}.yaml"
    if builtin.is_file():
        return builtin.read_text(), f"built-in recipe {source!r}"
    if (path / "recipe.yaml").is_file():
        raise RecipeError(f"{path} is a run directory, not a recipe; its recipe is {path / 'recipe.yaml'}")
    if path.is_dir():
        raise RecipeError(f"{path} is a folder, not a recipe: give a recipe's YAML file or a built-in recipe's name ({', '.join(builtin_recipes())})")
    # A misspelt file (oneshot.yml for oneshot.yaml) or built-in name: the closest one there is.
    files: list[str] = []
    with contextlib.suppress(OSError):  # a folder that cannot be listed has nothing to suggest
        files = [entry.name for entry in path.parent.iterdir() if entry.suffix in (".yaml", ".yml")]
    hint = close_name(path.name, files) or close_name(str(source), builtin_recipes())
    raise RecipeError(
        f"no recipe file {str(source)!r} and no built-in recipe of that name{hint}; "
        f"built-in recipes: {', '.join(builtin_recipes())}"
    )


def _read_utf8(path: Path, origin: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise RecipeError(f"{origin} is not a recipe: a recipe is YAML text in UTF-8, and byte {error.start} is not ({error.reason})") from None
    except OSError as error:
        raise RecipeError(f"{path} cannot be read: {error.strerror or error}") from None


def _parse_yaml(text: str, origin: str) -> object:
    """YAML by a safe loader that refuses duplicate keys."""
    try:
        return yaml.load(text, Loader=_SafeUniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as error:
        raise RecipeError(f"{origin} is not valid YAML: {yaml_problem(error)}") from None


def load_recipe(source: str | Path | None = None, overrides: Iterable[str] = ()) -> Recipe:
    """Validate a recipe file, built-in name or the default recipe, with ``key.sub=value`` overrides.

    >>> load_recipe(overrides=["eval.epochs=3", "prune.sparsity=0.5"]).eval.epochs
    3
    """
    overrides = override_list(overrides)
    data, origin = read_recipe_data(source)
    if "sweep" in data:
        raise RecipeError(f"{origin} is a sweep, which stands for several recipes; give a recipe without a sweep section")
    for override in overrides:
        apply_override(data, override)
    return validate(data, f"{origin} with the --set overrides" if overrides else origin)


def override_list(overrides: Iterable[str]) -> list[str]:
    """``overrides`` as a list; a single string (which would read as its characters) is an error."""
    if isinstance(overrides, str):
        raise TypeError(f"overrides must be a list of 'key.sub=value' strings, got the string {overrides!r}")
    if isinstance(overrides, Mapping):
        from prunelab.config.sweep import grid_value  # values as YAML writes them (null, [0, 1]); sweep imports this module

        example = ", ".join(f"'{key}={grid_value(value)}'" for key, value in list(overrides.items())[:2])
        raise TypeError(f"overrides must be a list of 'key.sub=value' strings, as --set takes them ([{example}]), not a mapping")
    overrides = list(overrides)
    if not all(isinstance(override, str) for override in overrides):
        raise TypeError(f"overrides must be a list of 'key.sub=value' strings, got {overrides!r}")
    return overrides


def validate(data: dict, origin: str = "recipe", *, recorded: bool = False) -> Recipe:
    """The :class:`Recipe` of parsed YAML, or a :class:`RecipeError` naming ``origin`` and every
    field that is wrong. ``recorded``: a saved run's recipe, whose model and dataset are taken
    as named even if no module registers them (:func:`load_run_recipe`)."""
    try:
        return Recipe.model_validate(data, context=RECORDED if recorded else None)
    except ValidationError as error:
        raise RecipeError(describe_errors(error, origin)) from None


def describe_errors(error: ValidationError, origin: str, section: tuple[str, ...] = (), schema: type[BaseModel] = Recipe) -> str:
    """One line per invalid field of a recipe (or of its ``section``, validated by ``schema``), naming the field."""
    lines = [
        _describe({**e, "loc": (*section, *e["loc"])}, _unknown_field_hint(schema, e["loc"], section) if e["type"] == "extra_forbidden" else "")
        for e in error.errors()
    ]
    return f"{origin} is invalid:\n" + "\n".join(f"  - {line}" for line in lines)


def _describe(error: dict, unknown_hint: str = "") -> str:
    loc = list(error["loc"])
    if len(loc) >= 2 and loc[0] == "prune":
        del loc[1]  # the method's tag, which pydantic adds for the tagged union
    if error["type"] in ("union_tag_invalid", "union_tag_not_found") and (tag := str(error.get("ctx", {}).get("discriminator", "")).strip("'")):
        loc.append(tag)
    where = ".".join('""' if part == "" else str(part) for part in loc)  # an empty key shown as one
    if not where:  # a check across sections: its message names the fields
        return error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown field; {unknown_hint} (unknown keys are not ignored)" if unknown_hint else \
            f"{where}: unknown field (check the spelling; unknown keys are not ignored)"
    if error["type"] == "union_tag_invalid":  # pydantic's "Input tag ... found using ..." says it in its own words
        choices = [tag.strip("'") for tag in error["ctx"]["expected_tags"].split(", ")]
        return f"{where}: unknown value {error['ctx']['tag']!r}{close_name(error['ctx']['tag'], choices)}; expected one of {', '.join(choices)}"
    value = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    # Our own checks (value_error) already quote the value in their message.
    quoted = error["type"] == "value_error" and repr(value) in message
    shown = "" if isinstance(value, dict) or quoted else f" (got {_BRIEF.repr(value)})"
    fraction_field = any(word in where for word in ("sparsity", "ratio", "fraction", "rate"))
    if fraction_field and error["type"] == "less_than" and isinstance(value, (int, float)) and 1 < value < 100:
        shown += f": a fraction, e.g. {value / 100:g} for {value:g}%"
    # `--set seeds=0,1` or `seeds: 0` for the list `[0, 1]` or `[0]`: YAML's brackets were left out.
    if error["type"] in ("list_type", "tuple_type") and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        shown += f": a list, e.g. [{value}]"
    # `model: my_net` for `model: {name: my_net}`, as a recipe written from scratch may have it.
    config_class = getattr(recipe_schema, str(error.get("ctx", {}).get("class_name")), None)
    if error["type"] == "model_type" and isinstance(value, str) and "name" in getattr(config_class, "model_fields", {}):
        shown += f": a mapping, e.g. {{name: {value}}}"
    return f"{where}: {message}{shown}"


def _unknown_field_hint(schema: type[BaseModel], loc: tuple, section: tuple[str, ...] = ()) -> str:
    """For an unknown key at ``loc`` (pydantic's, the prune method's tag included) of a
    ``section`` validated by ``schema``: the field meant, so that a typo need not be looked up."""
    node, path, method = schema, list(section), None
    for part in loc[:-1]:
        field = node.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            if method is None and part in _PRUNE_METHODS and path == ["prune"]:  # the union's tag
                node, method = _PRUNE_METHODS[part], part
                continue
            return ""
        members = [m for m in typing.get_args(field.annotation) or (field.annotation,) if isinstance(m, type) and issubclass(m, BaseModel)]
        if len(members) != 1 and part != "prune":  # prune's member is the one its tag, next in loc, names
            return ""
        node, path = members[0], [*path, part]
    key, fields = loc[-1], list(node.model_fields)
    others = [name for name, config in _PRUNE_METHODS.items() if key in config.model_fields] if method else []
    if others:  # a field of another method, e.g. IMP's rate under oneshot
        return f"prune.{key} is read by method {', '.join(others)}, not {method}"
    if node is Recipe:  # a section's field written at the top level, e.g. `sparsity: 0.9`
        owners = [section for section, field in Recipe.model_fields.items()
                  if any(key in getattr(member, "model_fields", {}) for member in typing.get_args(field.annotation) or (field.annotation,))]  # fmt: skip
        if owners:
            return f"did you mean {' or '.join(f'{section}.{key}' for section in owners)}?"
    close = difflib.get_close_matches(str(key), fields, n=1)
    if close:
        return f"did you mean {'.'.join([*path, close[0]])}?"
    return f"{'.'.join(path) or 'a recipe'} has the fields {', '.join(fields)}"


#: The prune section's schema of each method.
_PRUNE_METHODS = {m.model_fields["method"].default: m for m in typing.get_args(Recipe.model_fields["prune"].annotation)}


#: Bad values as error messages show them: a long list or string cut short, as YAML anchors
#: can make a few lines of recipe a value of millions of items.
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxlist, _BRIEF.maxtuple, _BRIEF.maxstring, _BRIEF.maxother = 3, 10, 10, 80, 80


def parse_override(override: str) -> tuple[str, object]:
    """``key.sub=value`` as the key and the value parsed as YAML (``0.5``, ``[1, 2]``).

    >>> parse_override(" prune.sparsity = 0.5")
    ('prune.sparsity', 0.5)
    """
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"override {override!r} must look like key.sub=value")
    if "" in key.split("."):
        raise RecipeError(f"override {override!r}: {key!r} has an empty field name (fields are joined by single dots, e.g. prune.sparsity)")
    try:
        value = yaml.load(raw, Loader=_SafeUniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as error:
        raise RecipeError(f"override {override!r}: the value is not valid YAML: {yaml_problem(error)}") from None
    if comment := _comment(raw):  # a shell user means the text: `--set description=exp #3` would lose "#3"
        raise RecipeError(f"override {override!r}: YAML reads {comment!r} as a comment and drops it; "
                          f"quote the value to keep it, e.g. {key}='{raw.strip()}', or leave the comment out")  # fmt: skip
    if isinstance(value, dict) and any(v is None and ":" in str(k) for k, v in value.items()):
        # YAML reads {a:0.5} as the key "a:0.5" without a value
        raise RecipeError(f"override {override!r}: write a mapping with a space after each colon, e.g. {{name: 0.5}}")
    return key, value


def _comment(raw: str) -> str:
    """The comment YAML would drop from a ``--set`` value (``#`` after a space, or first), or ''.

    >>> _comment("exp #3"), _comment("'exp #3'"), _comment("a#b"), _comment("[1, 2] # two")
    ('#3', '', '', '# two')
    """
    tokens = [token for token in yaml.scan(raw) if not isinstance(token, (yaml.StreamStartToken, yaml.StreamEndToken))]
    return raw[max((token.end_mark.index for token in tokens), default=0):].strip()


def apply_override(data: dict, override: str) -> None:
    """Set ``key.sub=value`` in nested recipe data."""
    assign(data, *parse_override(override))


#: Mappings keyed by layer names, which have dots of their own: the rest of a key is one name.
KEYED_BY_LAYER = ("prune.ratios.",)


def assign(data: dict, key: str, value: object) -> None:
    """Set the dotted ``key`` (e.g. ``eval.optimizer.lr``) in nested recipe data; under
    ``prune.ratios`` the rest is one layer name (``prune.ratios.features.0``).

    >>> data = {}
    >>> assign(data, "prune.ratios.features.0", 0.5)
    >>> data
    {'prune': {'ratios': {'features.0': 0.5}}}
    """
    node = data
    prefix = next((p for p in KEYED_BY_LAYER if key.startswith(p) and len(key) > len(p)), None)
    parts = key.split(".") if prefix is None else [*prefix.rstrip(".").split("."), key[len(prefix):]]
    for part in parts[:-1]:
        if node.get(part) is None:  # missing, or an empty `eval:` that YAML reads as null
            node[part] = {}
        child = node[part]
        if not isinstance(child, dict):
            raise RecipeError(f"cannot set {key!r}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


class _SafeUniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error: the
    second would silently replace the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *anchor": keys given beside it override its
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # ? [a]: a list or mapping as a key
                kind = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
                raise yaml.constructor.ConstructorError(None, None, f"a key must be a name, not {kind}", key_node.start_mark) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        self.flatten_mapping(node)
        return super().construct_mapping(node, deep)


def yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error in one line, where it is and what is wrong (PyYAML's own spans several
    lines and names a "<unicode string>").

    >>> try:
    ...     yaml.safe_load("a: [1")
    ... except yaml.YAMLError as error:
    ...     print(yaml_problem(error))
    line 1, column 6: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence)
    """
    mark, problem, context = (getattr(error, name, None) for name in ("problem_mark", "problem", "context"))
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    # An editor's tab reads as an indent but is none to YAML, whose words alone do not say so.
    tab = "; indent with spaces: YAML takes no tabs" if problem and "'\\t'" in problem else ""
    return f"{where}{problem or error}" + (f" ({context})" if context else "") + tab


def read_recipe_data(source: str | Path | None) -> tuple[dict, str]:
    """The parsed YAML mapping of a recipe (file, built-in name, or the default) and its origin."""
    if source is not None and not isinstance(source, (str, Path)):
        raise TypeError(f"a recipe is a file's path or a built-in recipe's name, got {type(source).__name__} "
                        "(recipe data as a dict: prunelab.config.validate)")  # fmt: skip
    text, origin = recipe_text("default" if source is None else source)
    data = _parse_yaml(text, origin)
    if data in (None, {}):  # would run the schema's defaults, which are not the default recipe
        raise RecipeError(
            f"{origin} is empty: a recipe needs at least one section ({SECTIONS_NAMED}); "
            "without a recipe, prunelab runs the built-in recipe 'default'"
        )
    if not isinstance(data, dict):
        raise RecipeError(f"{origin} must be a mapping of sections ({SECTIONS_NAMED}), got {type(data).__name__}")
    return data, origin


#: Settings that do not change an experiment's results.
NOT_IN_RUN_NAME = {"seeds": True, "description": True, "device": True, "threads": True, "data": {"data_dir", "download"}}


def run_name(recipe: Recipe) -> str:
    """``<method>-<model>-<data>-<hash>``: the hash covers every non-default setting except
    the seeds, the description, the device and threads, where the data comes from and settings the
    recipe cannot read (:func:`effective_recipe`), so that a run directory can gain seeds and the
    same experiment always resumes the same directory."""
    dumped = effective_recipe(recipe).model_dump(mode="json", exclude_defaults=True, exclude=NOT_IN_RUN_NAME)
    settings = {section: value for section, value in dumped.items() if value != {}}
    # The method is the union's tag: keep it even when it is the default.
    settings.setdefault("prune", {})["method"] = recipe.prune.method
    if recipe.model.weights is not None:  # other weights in the same file are another experiment
        settings["model"]["weights"] = weights_digest(recipe.model.weights)
    return f"{recipe.prune.method}-{recipe.model.name}-{recipe.data.name}-{settings_digest(settings)}"


def weights_digest(path: str | Path) -> str:
    """The SHA-256 of the file ``model.weights`` names: what a run starting from it is named by.

    >>> weights_digest("no/such/file.safetensors")
    Traceback (most recent call last):
    ...
    prunelab.config.load.RecipeError: model.weights: no file no/such/file.safetensors
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise RecipeError(f"model.weights: no file {path}") from None
    return digest.hexdigest()


def settings_digest(settings: object, length: int = 8) -> str:
    """A short hash of JSON-like ``settings`` (mapping order aside), for names of folders and files.

    >>> settings_digest({"b": 1, "a": [2]}) == settings_digest({"a": [2], "b": 1})
    True
    """
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:length]


def effective_recipe(recipe: Recipe) -> Recipe:
    """``recipe`` with every setting it cannot read (:func:`prunelab.config.schema.unread_settings`)
    back at its default, and without model options that name their builder's default: the
    settings of the experiment it runs."""
    for key in unread_settings(recipe):
        recipe = _with_default(recipe, key.split("."))
    defaults = builder_defaults(recipe.model.name)
    options = {key: value for key, value in recipe.model.options.items() if _plain(value) != defaults.get(key, NO_DEFAULT)}
    return recipe.model_copy(update={"model": recipe.model.model_copy(update={"options": options})})


def builder_defaults(name: str) -> dict[str, object]:
    """The options of model ``name`` with their builder's defaults (:func:`prunelab.models.model_options`);
    none for a saved run's model that no module registers here, whose options are then shown as recorded."""
    return model_options(name) if name in MODELS else {}


def _plain(value: object) -> object:
    """``value`` as JSON reads it back, so that a tuple default equals the list a recipe gives."""
    return json.loads(json.dumps(value))


def _with_default(model: BaseModel, path: list[str]) -> BaseModel:
    """``model`` with the setting at ``path`` (e.g. ``["find", "epochs"]``) at its default."""
    name, *rest = path
    if rest:
        value = _with_default(getattr(model, name), rest)
    else:
        value = type(model).model_fields[name].get_default(call_default_factory=True)
    return model.model_copy(update={name: value})


def flat(recipe: dict, prefix: str = "") -> dict[str, object]:
    """A nested recipe as dotted keys.

    >>> flat({"eval": {"epochs": 2, "optimizer": {"lr": 0.1}}, "model": {"options": {}}, "seeds": [0]})
    {'eval.epochs': 2, 'eval.optimizer.lr': 0.1, 'seeds': [0]}
    """
    flattened = {}
    for key, value in recipe.items():
        if isinstance(value, dict):  # an empty section sets nothing
            flattened.update(flat(value, f"{prefix}{key}."))
        else:
            flattened[f"{prefix}{key}"] = value
    return flattened


def experiment_settings(recipe: Recipe) -> dict[str, object]:
    """Every setting that changes a run's results (dotted keys), defaults included; those it
    cannot read at their defaults (:func:`effective_recipe`)."""
    return flat(effective_recipe(recipe).model_dump(mode="json", exclude=NOT_IN_RUN_NAME))


def load_run_recipe(folder: str | Path) -> Recipe:
    """The resolved recipe of the run directory ``folder`` (its ``recipe.yaml``), read with
    today's defaults for settings it does not name. A run writes every section, so a file
    without one was cut short or edited: an error naming it, not the schema's defaults. Its
    model and dataset need not be registered: reading a run's results needs neither, so that
    a model of the user's own needs no ``--import`` to show, compare or report its runs."""
    path = Path(folder) / "recipe.yaml"
    origin = f"{path} (a damaged run folder? remove that file and run the run's command again: it is written anew)"
    data = _parse_yaml(_read_utf8(path, origin), origin)
    if data is None:
        raise RecipeError(f"{origin} is empty")
    missing = [section for section in ("seeds", *RECIPE_SECTIONS) if not isinstance(data, dict) or section not in data]
    if missing:
        raise RecipeError(f"{origin} lacks {', '.join(missing)}, which a run writes")
    return validate(data, str(path), recorded=True)


def run_settings(folder: str | Path, unread_as: str | None = None) -> dict[str, object]:
    """:func:`experiment_settings` of the run directory ``folder`` (:func:`load_run_recipe`);
    with ``unread_as``, the settings the run never read show that instead of their defaults,
    and those its method fixes the values it used (for tables of runs)."""
    recipe = load_run_recipe(folder)
    settings = experiment_settings(recipe)
    if unread_as is not None:
        unread = tuple(unread_settings(recipe))
        settings.update({key: unread_as for key in settings if key in unread or key.startswith(tuple(f"{u}." for u in unread))})
        settings.update(fixed_settings(recipe))
    return settings


def recipe_yaml(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML, every default written out."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
