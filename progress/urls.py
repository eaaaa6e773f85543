"""URLs of the progress app: pages and the JSON API. Web processes."""

from django.urls import path

from progress.web import api, views

app_name = "progress"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("jobs/<uuid:job_id>/", views.job_page, name="job"),
    path("jobs/<uuid:job_id>/download/", views.download, name="download"),
    path("jobs/<uuid:job_id>/result.json", views.result_json, name="result-json"),
    path("history/", views.history, name="history"),
    path("metrics/", views.metrics, name="metrics"),
    path("api/tasks/", api.tasks, name="api-tasks"),
    path("api/jobs/", api.jobs, name="api-jobs"),
    path("api/events/", api.user_event_stream, name="api-events"),
    path("api/jobs/<str:job_id>/", api.job_detail, name="api-job"),
    path("api/jobs/<str:job_id>/cancel/", api.job_cancel, name="api-job-cancel"),
    path("api/jobs/<str:job_id>/retry/", api.job_retry, name="api-job-retry"),
    path("api/jobs/<str:job_id>/events/", api.job_event_stream, name="api-job-events"),
]
