"""``GET /templates`` and ``GET /templates/{name}``: the control plane's templates, in the SDK's
``Template`` shape, for any authenticated caller; each read is recorded (``templates.list``,
``templates.get``).

``spec`` is the template in full, Kubernetes-style (``resources.requests``);
``resourceVersion`` changes exactly when the template does.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from agenttier_router.controlplane import Template

from .acting import audited_caller, recorded_call
from .errors import ApiError
from .models import ErrorOut
from .models_sdk import TemplateOut, TemplatesOut

__all__ = ["router", "template_out"]

router = APIRouter(prefix="/api/v1", responses={
    401: {"model": ErrorOut}, 404: {"model": ErrorOut},
})


def _quantity(value: float, unit: str) -> str:
    """A Kubernetes quantity: whole units when exact, else thousandths (cpu) or MiB (memory)."""
    if unit == "cpu":
        return f"{value:g}" if value == int(value) else f"{round(value * 1000)}m"
    return f"{value:g}Gi" if value == int(value) else f"{round(value * 1024)}Mi"


def _spec(template: Template) -> dict[str, Any]:
    requests = {"cpu": _quantity(template.cpu, "cpu"),
                "memory": _quantity(template.memory_gib, "memory")}
    return {"description": template.description, "image": template.image,
            "resources": {"requests": requests, "limits": dict(requests)}}


def template_out(template: Template) -> TemplateOut:
    """A template as the SDK's ``Template`` reads it."""
    spec = _spec(template)
    version = hashlib.sha256(json.dumps([template.name, spec], sort_keys=True).encode())
    return TemplateOut(name=template.name, description=template.description,
                       image=template.image, resource_version=version.hexdigest()[:16],
                       spec=spec)


@router.get("/templates", response_model=TemplatesOut)
def list_templates(request: Request) -> TemplatesOut:
    """Every template sandboxes may be made from, by name."""
    svc, identity = audited_caller(request, "templates.list", "template")
    templates = recorded_call(svc, identity, "templates.list", "template",
                              lambda: svc.control_plane.templates())
    return TemplatesOut(templates=[template_out(templates[n]) for n in sorted(templates)])


@router.get("/templates/{name}", response_model=TemplateOut)
def get_template(name: Annotated[str, Path(min_length=1, max_length=253)],
                 request: Request) -> TemplateOut:
    """One template; 404 ``template not found``."""
    svc, identity = audited_caller(request, "templates.get", "template",
                                   details={"template": name})

    def find() -> Template:
        template = svc.control_plane.templates().get(name)
        if template is None:
            raise ApiError(404, "template not found")
        return template

    return template_out(recorded_call(svc, identity, "templates.get", "template", find,
                                      details={"template": name}))
