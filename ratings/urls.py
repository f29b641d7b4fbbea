from django.urls import path

from . import researcher_views, views

app_name = "ratings"

urlpatterns = [
    path("join/<str:enrolment_token>/", views.join, name="join"),
    path("join/<str:enrolment_token>/sample/", views.join_sample, name="join_sample"),
    path("r/<str:token>/", views.rater_home, name="home"),
    path("r/<str:token>/start/", views.consent, name="consent"),
    path("r/<str:token>/calibrate/", views.calibrate, name="calibrate"),
    path("r/<str:token>/rate/", views.rate, name="rate"),
    path("r/<str:token>/pair/", views.pair, name="pair"),
    path("r/<str:token>/break/", views.take_break, name="break"),
    path("r/<str:token>/done/", views.done, name="done"),
    path("r/<str:token>/img/<str:public_id>", views.image, name="image"),
    path("studies/", researcher_views.study_list, name="study_list"),
    path("studies/<slug:name>/", researcher_views.study_dashboard, name="dashboard"),
    path("studies/<slug:name>/rebuild-report/", researcher_views.rebuild_report, name="rebuild_report"),
    path("studies/<slug:name>/report/<path:file>", researcher_views.report_file, name="report_file"),
]
