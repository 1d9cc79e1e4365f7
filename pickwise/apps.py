from django.apps import AppConfig


class PickwiseConfig(AppConfig):
    name = "pickwise"
    verbose_name = "Pickwise"
