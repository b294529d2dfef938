{{/*
Names, labels and the paths inside the Router's container.
*/}}

{{- define "agenttier.router.fullname" -}}
{{- printf "%s-router" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The spec names the SQLite volume "<release>-router-storage". */}}
{{- define "agenttier.storage.pvcName" -}}
{{- printf "%s-router-storage" .Release.Name -}}
{{- end -}}

{{- define "agenttier.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "agenttier.router.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "agenttier.apiKeysSecret" -}}
{{- default (printf "%s-api-keys" .Release.Name) .Values.router.apiKeys.existingSecret -}}
{{- end -}}

{{- define "agenttier.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: router
{{- end -}}

{{- define "agenttier.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "agenttier.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agenttier
{{- end -}}

{{- define "agenttier.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Fixed mount points: none of them is configurable, so they cannot collide. */}}
{{- define "agenttier.paths.sandboxes" -}}/srv/agenttier/sandboxes{{- end -}}
{{- define "agenttier.paths.apiKeys" -}}/etc/agenttier/api-keys{{- end -}}
{{- define "agenttier.paths.templates" -}}/etc/agenttier/templates{{- end -}}
{{- define "agenttier.paths.externalSpool" -}}/var/spool/agenttier{{- end -}}

{{/* The directory that holds the SQLite file: the storage volume's mount point. */}}
{{- define "agenttier.sqlite.dir" -}}
{{- dir .Values.optional.storage.sqlite.path -}}
{{- end -}}

{{/* The recorder's spool: beside the SQLite file, or an emptyDir for an external database. */}}
{{- define "agenttier.spoolDir" -}}
{{- if eq .Values.optional.storage.driver "sqlite" -}}
{{- printf "%s/spool" (include "agenttier.sqlite.dir" .) -}}
{{- else -}}
{{- include "agenttier.paths.externalSpool" . -}}
{{- end -}}
{{- end -}}

{{- define "agenttier.storage.sqlite" -}}
{{- if and .Values.optional.storage.enabled (eq .Values.optional.storage.driver "sqlite") -}}true{{- end -}}
{{- end -}}

{{- define "agenttier.storage.pvc" -}}
{{- if and (include "agenttier.storage.sqlite" .) .Values.optional.storage.sqlite.persistence.enabled -}}true{{- end -}}
{{- end -}}

{{/* The control plane, the mode and what they imply. */}}
{{- define "agenttier.kubernetes" -}}
{{- if eq (toString .Values.router.controlPlane) "kubernetes" -}}true{{- end -}}
{{- end -}}

{{- define "agenttier.watch" -}}
{{- if eq (toString .Values.router.mode) "watch" -}}true{{- end -}}
{{- end -}}

{{/* AGENTTIER_CONTROL_PLANE: kubernetes:// (in-cluster config), one namespace, or local. */}}
{{- define "agenttier.controlPlaneURL" -}}
{{- if include "agenttier.kubernetes" . -}}
{{- if .Values.router.namespace -}}
{{- printf "kubernetes://?namespace=%s" .Values.router.namespace -}}
{{- else -}}
kubernetes://
{{- end -}}
{{- else -}}
{{- printf "local://%s" (include "agenttier.paths.sandboxes" .) -}}
{{- end -}}
{{- end -}}

{{/* RBAC is rendered in kubernetes mode only, unless rbac.create=false. */}}
{{- define "agenttier.rbac" -}}
{{- if and (include "agenttier.kubernetes" .) .Values.rbac.create -}}true{{- end -}}
{{- end -}}

{{/* Cluster-scoped names carry the release's namespace: two releases never share one. */}}
{{- define "agenttier.clusterRoleName" -}}
{{- printf "%s-%s" .Release.Namespace (include "agenttier.router.fullname" .) -}}
{{- end -}}

{{/*
The RBAC rules of the Router's Kubernetes account: exactly the verbs it uses.
Called with (dict "root" $ "scope" S): S "namespaced" gives the rules on
namespaced resources, "cluster" the rules on cluster-scoped ones (the
ClusterSandboxTemplates), "all" both. A watcher (router.mode=watch) only reads.
*/}}
{{- define "agenttier.rbac.rules" -}}
{{- $watch := include "agenttier.watch" .root -}}
{{- if has .scope (list "all" "namespaced") }}
- apiGroups: ["agenttier.io"]
  resources: ["sandboxes"]
  {{- if $watch }}
  verbs: ["get", "list", "watch"]
  {{- else }}
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
  {{- end }}
{{- if not $watch }}
- apiGroups: ["agenttier.io"]
  resources: ["sandboxes/status"]
  verbs: ["get", "update", "patch"]
{{- end }}
- apiGroups: ["agenttier.io"]
  resources: ["sandboxtemplates"]
  verbs: ["get", "list", "watch"]
{{- end }}
{{- if has .scope (list "all" "cluster") }}
- apiGroups: ["agenttier.io"]
  resources: ["clustersandboxtemplates"]
  verbs: ["get", "list", "watch"]
{{- end }}
{{- if has .scope (list "all" "namespaced") }}
{{- if not $watch }}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
- apiGroups: [""]
  resources: ["pods/exec"]
  # create: the exec POST; get: the WebSocket upgrade, a GET.
  verbs: ["create", "get"]
{{- end }}
- apiGroups: [""]
  resources: ["events"]
  {{- if $watch }}
  verbs: ["get", "list", "watch"]
  {{- else }}
  # create: the ShareGranted and ShareRevoked Events the Router writes.
  verbs: ["get", "list", "watch", "create"]
  {{- end }}
{{- end }}
{{- end -}}
