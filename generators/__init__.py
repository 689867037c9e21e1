"""Generator plugins: one file each, registered by name with @register_generator."""
