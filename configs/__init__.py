"""Recipe presets (YAML) and the root config schema (`configs.schema`, imported on demand)."""
__all__: list[str] = []
