"""A plugin whose entry-point name collides with another distribution's."""
