"""Writes for the annotation domain. Every caller (API, pages, commands, tasks) uses these."""
