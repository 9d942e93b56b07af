"""The admin, for the tests of triggers.admin: the default site on the default
database, and a site of its own for each other database the settings name."""

from django.conf import settings
from django.contrib import admin
from django.urls import path

from triggers.admin import register

urlpatterns = [path("admin/", admin.site.urls)]

for alias in ("pg", "maria"):
    if alias in settings.DATABASES:
        site = admin.AdminSite(name=f"admin_{alias}")
        register(site, using=alias)
        urlpatterns.append(path(f"admin-{alias}/", site.urls))
