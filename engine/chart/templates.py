"""The chart's Helm templates: the workload model of :mod:`.objects` in Helm's template language.

Structure known when the chart is generated (the workload type, the service's mounts and volumes) is
written out; everything a deployer may change is a value. Each template mirrors one function of
:mod:`.objects`; a change to one must be made to the other (the tests lint these with real Helm and
validate the model's objects against Kubernetes' schemas for every value combination).
"""

from __future__ import annotations

from .objects import ATTESTS_LABEL, CAS_CA_DIRECTORY, CAS_CA_FILE, TOKEN_DIRECTORY, TOKEN_FILE, TOKEN_LIFETIME
from .spec import MountKind, ServiceSpec, WorkloadType
from .values import volume_key


def helpers(spec: ServiceSpec) -> str:
    return f"""{{{{/* Names and labels: <release>-sconify-{spec.service}, as SCONE's generated charts name them. */}}}}
{{{{- define "sconify.fullname" -}}}}
{{{{- printf "%s-sconify-%s" .Release.Name "{spec.service}" | trunc 63 | trimSuffix "-" -}}}}
{{{{- end -}}}}

{{{{- define "sconify.selectorLabels" -}}}}
app.kubernetes.io/name: sconify-{spec.service}
app.kubernetes.io/instance: {{{{ .Release.Name }}}}
{{{{- end -}}}}

{{{{- define "sconify.labels" -}}}}
{{{{ include "sconify.selectorLabels" . }}}}
app.kubernetes.io/component: confidential-service
app.kubernetes.io/managed-by: {{{{ .Release.Service }}}}
{{{{- end -}}}}
"""


def persistent_volume_claims(spec: ServiceSpec) -> str:
    parts = []
    for volume in spec.volumes:
        key = volume_key(volume)
        parts.append(f"""{{{{- with .Values.{key}.persistence }}}}
{{{{- if and .enabled (not .existingClaim) }}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{{{ include "sconify.fullname" $ }}}}-{key}
  labels:
    {{{{- include "sconify.labels" $ | nindent 4 }}}}
spec:
  accessModes:
    {{{{- toYaml .accessModes | nindent 4 }}}}
  resources:
    requests:
      storage: {{{{ .size | quote }}}}
  {{{{- if .storageClass }}}}
  storageClassName: {{{{ .storageClass | quote }}}}
  {{{{- end }}}}
{{{{- end }}}}
{{{{- end }}}}
""")
    return "".join(parts)


def cas_certificate_config_map() -> str:
    return f"""{{{{- if .Values.scone.casCertificate }}}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{{{ include "sconify.fullname" . }}}}-cas-ca
  labels:
    {{{{- include "sconify.labels" . | nindent 4 }}}}
data:
  {CAS_CA_FILE}: {{{{ .Values.scone.casCertificate | quote }}}}
{{{{- end }}}}
"""


def service_account() -> str:
    return """{{- if and .Values.attestation.kubernetes.serviceAccount .Values.attestation.kubernetes.createServiceAccount }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Values.attestation.kubernetes.serviceAccount }}
  labels:
    {{- include "sconify.labels" . | nindent 4 }}
automountServiceAccountToken: false
{{- end }}
"""


def _environment() -> str:
    return f"""        - name: SCONE_CAS_ADDR
          value: {{{{ .Values.scone.cas | quote }}}}
        - name: SCONE_CONFIG_ID
          value: {{{{ .Values.scone.configID | quote }}}}
        - name: SCONE_LOG
          value: {{{{ .Values.scone.log | toString | quote }}}}
        {{{{- if .Values.scone.las }}}}
        - name: SCONE_LAS_ADDR
          value: {{{{ .Values.scone.las | quote }}}}
        {{{{- else }}}}
        - name: SCONE_LAS_ADDR
          valueFrom:
            fieldRef:
              fieldPath: status.hostIP
        {{{{- end }}}}
        {{{{- if .Values.scone.printVersion }}}}
        - name: SCONE_VERSION
          value: "1"
        {{{{- end }}}}
        {{{{- if .Values.scone.heap }}}}
        - name: SCONE_HEAP
          value: {{{{ .Values.scone.heap | quote }}}}
        {{{{- end }}}}
        {{{{- if .Values.scone.stack }}}}
        - name: SCONE_STACK
          value: {{{{ .Values.scone.stack | quote }}}}
        {{{{- end }}}}
        {{{{- if .Values.scone.casCertificate }}}}
        - name: SCONE_CAS_CA
          value: "{CAS_CA_DIRECTORY}/{CAS_CA_FILE}"
        {{{{- end }}}}
        {{{{- with .Values.extraEnvVars }}}}
        {{{{- toYaml . | nindent 8 }}}}
        {{{{- end }}}}
"""


_RESOURCES = """      {{- $resources := deepCopy .Values.resources }}
      {{- $sgx := dict }}
      {{- if eq .Values.useSGXDevPlugin "scone" }}
      {{- $_ := set $sgx "sgx.k8s.io/sgx" "1" }}
      {{- else if eq .Values.useSGXDevPlugin "enabled" }}
      {{- $_ := set $sgx "sgx.intel.com/epc" .Values.sgxEpcMem }}
      {{- $_ := set $sgx "sgx.intel.com/enclave" "1" }}
      {{- else if eq .Values.useSGXDevPlugin "azure" }}
      {{- $_ := set $sgx "sgx.intel.com/epc" .Values.sgxEpcMem }}
      {{- end }}
      {{- if $sgx }}
      {{- $_ := set $resources "limits" (merge $sgx (default (dict) $resources.limits)) }}
      {{- end }}
      resources:
        {{- toYaml $resources | nindent 8 }}
"""


def _mounts(spec: ServiceSpec) -> tuple[str, str]:
    """``volumeMounts`` and ``volumes``, unrolled for the service's mounts."""
    mounts, volumes = [], []
    for index, mount in enumerate(spec.mounts):
        if mount.kind is MountKind.TMPFS:
            name = f"memory-{index}"
            volumes.append(f"""    - name: {name}
      emptyDir:
        medium: Memory
""")
        else:
            assert mount.volume is not None
            name = volume_key(mount.volume)
            volumes.append(f"""    - name: {name}
      {{{{- if .Values.{name}.persistence.enabled }}}}
      persistentVolumeClaim:
        claimName: {{{{ .Values.{name}.persistence.existingClaim | default (printf "%s-{name}" (include "sconify.fullname" .)) }}}}
      {{{{- else }}}}
      emptyDir: {{}}
      {{{{- end }}}}
""")
        mounts.append(f"""        - name: {name}
          mountPath: {mount.path}
""")
    mounts.append(f"""        {{{{- if .Values.scone.casCertificate }}}}
        - name: cas-ca
          mountPath: {CAS_CA_DIRECTORY}
          readOnly: true
        {{{{- end }}}}
        {{{{- if .Values.attestation.kubernetes.serviceAccount }}}}
        - name: sconify-token
          mountPath: {TOKEN_DIRECTORY}
          readOnly: true
        {{{{- end }}}}
""")
    volumes.append(f"""    {{{{- if .Values.scone.casCertificate }}}}
    - name: cas-ca
      configMap:
        name: {{{{ include "sconify.fullname" . }}}}-cas-ca
    {{{{- end }}}}
    {{{{- if .Values.attestation.kubernetes.serviceAccount }}}}
    - name: sconify-token
      projected:
        sources:
          - serviceAccountToken:
              audience: {{{{ .Values.attestation.kubernetes.audience | quote }}}}
              expirationSeconds: {TOKEN_LIFETIME}
              path: {TOKEN_FILE}
    {{{{- end }}}}
""")
    return "".join(mounts), "".join(volumes)


def pod_template(spec: ServiceSpec, workload: WorkloadType) -> str:
    mounts, volumes = _mounts(spec)
    restart = "  restartPolicy: Never\n" if workload is WorkloadType.JOB else ""
    ports = (
        ""
        if workload is WorkloadType.JOB
        else """      {{- if .Values.service.enabled }}
      ports:
        - name: service
          containerPort: {{ .Values.service.targetPort }}
      {{- end }}
"""
    )
    attests = "\n    ".join(f'{key}: "{value}"' for key, value in ATTESTS_LABEL.items())
    return f"""{{{{- define "sconify.podTemplate" -}}}}
metadata:
  labels:
    {{{{- include "sconify.labels" . | nindent 4 }}}}
    {attests}
spec:
  automountServiceAccountToken: false
  {{{{- with .Values.attestation.kubernetes.serviceAccount }}}}
  serviceAccountName: {{{{ . }}}}
  {{{{- end }}}}
  {{{{- with .Values.imagePullSecrets }}}}
  imagePullSecrets:
    {{{{- toYaml . | nindent 4 }}}}
  {{{{- end }}}}
  securityContext:
    {{{{- toYaml .Values.podSecurityContext | nindent 4 }}}}
{restart}  {{{{- with .Values.nodeSelector }}}}
  nodeSelector:
    {{{{- toYaml . | nindent 4 }}}}
  {{{{- end }}}}
  {{{{- with .Values.tolerations }}}}
  tolerations:
    {{{{- toYaml . | nindent 4 }}}}
  {{{{- end }}}}
  {{{{- with .Values.affinity }}}}
  affinity:
    {{{{- toYaml . | nindent 4 }}}}
  {{{{- end }}}}
  containers:
    - name: {spec.service}
      image: {{{{ .Values.image | quote }}}}
      imagePullPolicy: {{{{ .Values.imagePullPolicy }}}}
      env:
{_environment()}      securityContext:
        {{{{- toYaml .Values.securityContext | nindent 8 }}}}
{_RESOURCES}{ports}      volumeMounts:
{mounts}  volumes:
{volumes}{{{{- end -}}}}
"""


def workload(spec: ServiceSpec, kind: WorkloadType) -> str:
    head = """metadata:
  name: {{ include "sconify.fullname" . }}
  labels:
    {{- include "sconify.labels" . | nindent 4 }}
spec:
"""
    selector = """  selector:
    matchLabels:
      {{- include "sconify.selectorLabels" . | nindent 6 }}
"""
    template = """  template:
    {{- include "sconify.podTemplate" . | nindent 4 }}
"""
    if kind is WorkloadType.JOB:
        return "apiVersion: batch/v1\nkind: Job\n" + head + "  backoffLimit: 0\n" + template
    if kind is WorkloadType.DAEMONSET:
        return "apiVersion: apps/v1\nkind: DaemonSet\n" + head + selector + template
    if kind is WorkloadType.STATEFULSET:
        return (
            "apiVersion: apps/v1\nkind: StatefulSet\n"
            + head
            + '  serviceName: {{ include "sconify.fullname" . }}\n'
            + "  replicas: {{ .Values.replicaCount }}\n"
            + selector
            + template
        )
    strategy = "  strategy:\n    type: Recreate\n" if spec.volumes else ""
    return (
        "apiVersion: apps/v1\nkind: Deployment\n"
        + head
        + "  replicas: {{ .Values.replicaCount }}\n"
        + selector
        + template
        + strategy
    )


def service() -> str:
    return """{{- if .Values.service.enabled }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "sconify.fullname" . }}
  labels:
    {{- include "sconify.labels" . | nindent 4 }}
spec:
  type: {{ .Values.service.type }}
  selector:
    {{- include "sconify.selectorLabels" . | nindent 4 }}
  ports:
    - name: service
      port: {{ .Values.service.port }}
      targetPort: service
{{- end }}
"""
